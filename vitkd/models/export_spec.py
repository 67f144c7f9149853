"""Check a model config against the spec recorded in a vitkd export it loads weights from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vitkd.models.presets import ModelSpec
from vitkd.models.weights import WeightsMismatchError


def exported_spec(weights: str | Path) -> ModelSpec | None:
    """The spec a vitkd export folder records (`config.json` `vitkd.spec`), else `None`."""
    config = Path(weights).expanduser() / "config.json"
    if not config.is_file():
        return None
    try:
        block = json.loads(config.read_text()).get("vitkd", {})
    except (OSError, ValueError, AttributeError):
        return None  # not ours (an HF config of another shape): nothing to compare
    return ModelSpec.from_dict(block["spec"]) if "spec" in block else None


def check_export_spec(spec: ModelSpec, weights: str | Path) -> None:
    """Raise when `spec` is not the architecture or normalisation of the export at `weights`.

    A vitkd export (a student, a merged student) can be the teacher of the next stage or the
    start of a branch. Its weights may still load into a model configured with another
    normalisation, which would then see wrongly scaled pixels without any error, so the
    architecture and mean/std are compared first and the message says what to configure.
    """
    recorded = exported_spec(weights)
    if recorded is None:
        return
    same_norm = np.allclose(spec.mean, recorded.mean) and np.allclose(spec.std, recorded.std)
    if spec.arch == recorded.arch and same_norm:
        return
    kwargs = {k: v for k, v in recorded.kwargs.items() if k not in ("num_classes",)}
    raise WeightsMismatchError(
        f"{weights} is a vitkd export of {recorded.arch} with mean {list(recorded.mean)}, std "
        f"{list(recorded.std)}, but the config asks for {spec.arch} with mean {list(spec.mean)}, "
        f"std {list(spec.std)}; configure name: {recorded.arch} and kwargs: "
        f"{json.dumps({**kwargs, 'mean': list(recorded.mean), 'std': list(recorded.std)})}"
    )
