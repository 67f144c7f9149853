"""Run the selected probes on one ProbeData, or embed labelled images first."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from evaluation.encoder import embed_images
from evaluation.probes.data import ProbeData
from evaluation.probes.inputs import build_probe_data
from evaluation.probes.knn import knn_probe
from evaluation.probes.linear import LinearProbeConfig, linear_probe
from evaluation.probes.logistic import logistic_probe
from evaluation.probes.sources import ImageSample, iter_images

if TYPE_CHECKING:
    from vitkd.models import Backbone

PROBES = ("linear", "logistic", "knn")


def embed_samples(
    samples: Sequence[ImageSample],
    backbone: "Backbone",
    classes: Sequence[str] | None = None,
    batch_size: int = 64,
    tokens: str = "cls",
    device: str = "cpu",
) -> ProbeData:
    """Embed labelled images with `backbone` and split them into ProbeData."""
    x = embed_images(backbone, iter_images(samples), batch_size, tokens, device, total=len(samples))
    return build_probe_data(x, [s.label for s in samples], [s.split for s in samples], classes)


def run_probes(
    data: ProbeData,
    probes: Sequence[str] = PROBES,
    linear_config: LinearProbeConfig | None = None,
    knn_k: int = 20,
    progress: bool = True,
) -> dict[str, dict[str, object]]:
    """Results per probe name; each has ``balanced_accuracy`` (linear: mean and std over seeds)."""
    unknown = sorted(set(probes) - set(PROBES))
    if unknown:
        raise ValueError(f"unknown probes {unknown}; choose from {list(PROBES)}")
    out: dict[str, dict[str, object]] = {}
    for name in probes:
        if name == "linear":
            out[name] = linear_probe(data, linear_config, progress=progress)
        elif name == "logistic":
            out[name] = logistic_probe(data)
        else:
            out[name] = knn_probe(data, k=knn_k)
    return out


def headline(result: dict[str, object]) -> float:
    """The single balanced-accuracy number of a probe result (linear: the mean over seeds)."""
    value = result.get("balanced_accuracy_mean", result.get("balanced_accuracy"))
    return float(np.asarray(value))
