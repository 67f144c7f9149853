"""Patch-level probes on frozen embeddings: EVA linear probe, logistic regression, cosine kNN."""

from evaluation.probes.data import ProbeData, ProbeInputError, balanced_accuracy
from evaluation.probes.eva_layouts import EVA_LAYOUTS
from evaluation.probes.holdout import Holdout, holdout_split
from evaluation.probes.inputs import build_probe_data, load_labelled_embeddings
from evaluation.probes.knn import knn_predict, knn_probe
from evaluation.probes.linear import (
    MONITORS,
    LinearProbeConfig,
    describe_monitor,
    linear_probe,
    train_linear_probe,
)
from evaluation.probes.logistic import logistic_probe
from evaluation.probes.run import PROBES, embed_samples, headline, run_probes
from evaluation.probes.sources import ImageSample, read_sample, tile_folder_samples

__all__ = [
    "EVA_LAYOUTS",
    "MONITORS",
    "PROBES",
    "Holdout",
    "ImageSample",
    "LinearProbeConfig",
    "ProbeData",
    "ProbeInputError",
    "balanced_accuracy",
    "build_probe_data",
    "describe_monitor",
    "embed_samples",
    "headline",
    "holdout_split",
    "knn_predict",
    "knn_probe",
    "linear_probe",
    "load_labelled_embeddings",
    "logistic_probe",
    "read_sample",
    "run_probes",
    "tile_folder_samples",
    "train_linear_probe",
]
