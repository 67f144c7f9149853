"""Read exports to merge, with checksums, and check that they are one architecture."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import Tensor

from vitkd.models.export import CONFIG_NAME, WEIGHTS_NAME, read_config

# config.json fields that must agree for two exports to be one architecture
_SAME = ("architecture", "model_args")
_SAME_PRETRAINED = ("mean", "std", "input_size")


class MergeError(ValueError):
    """Exports that cannot be merged: another architecture, keys or shapes, or no base."""


@dataclass
class MergeInput:
    """One export folder: its config, fp weights and the checksum of its weights file."""

    path: Path
    config: dict[str, Any]
    state: dict[str, Tensor]
    sha256: str

    @property
    def weights(self) -> Path:
        """The weights file (named in errors)."""
        return self.path / WEIGHTS_NAME

    def record(self) -> dict[str, str]:
        """What the merged export's `vitkd` block records of this input."""
        return {"path": str(self.path), "sha256": self.sha256}


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_input(folder: str | Path) -> MergeInput:
    """Read an export folder (`model.safetensors` + `config.json`), as `vitkd.export` writes."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise MergeError(
            f"{path}: not a folder; pass export folders (model.safetensors + config.json)"
        )
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise MergeError(f"{weights}: missing; pass folders written by `python -m vitkd.export`")
    try:
        config = read_config(path)
    except FileNotFoundError as err:
        raise MergeError(str(err)) from err
    return MergeInput(path, config, load_file(str(weights), device="cpu"), sha256(weights))


def _architecture(item: MergeInput) -> dict[str, Any]:
    cfg = item.config
    shape = {k: cfg.get(k) for k in _SAME}
    shape.update({k: cfg.get("pretrained_cfg", {}).get(k) for k in _SAME_PRETRAINED})
    shape["python_model_args"] = cfg.get("vitkd", {}).get("python_model_args", {})
    return shape


def check_compatible(items: list[MergeInput]) -> None:
    """Raise `MergeError` unless every export has the first one's architecture, keys and shapes.

    The error names the file, the field or tensor key, and both values.
    """
    first = items[0]
    reference = _architecture(first)
    for item in items[1:]:
        other = _architecture(item)
        for field, value in reference.items():
            if other[field] != value:
                raise MergeError(
                    f"{item.path / CONFIG_NAME}: {field} is {other[field]!r} but "
                    f"{first.path / CONFIG_NAME} has {value!r}; only exports of one architecture "
                    "(the same student config) can be merged"
                )
        missing = [k for k in first.state if k not in item.state]
        extra = [k for k in item.state if k not in first.state]
        if missing or extra:
            key, where = (missing[0], "lacks") if missing else (extra[0], "has an extra")
            raise MergeError(
                f"{item.weights}: {where} tensor {key!r} compared with {first.weights} "
                f"({len(missing)} missing, {len(extra)} extra)"
            )
        for key, tensor in first.state.items():
            if item.state[key].shape != tensor.shape:
                raise MergeError(
                    f"{item.weights}: tensor {key!r} has shape {tuple(item.state[key].shape)} but "
                    f"{first.weights} has {tuple(tensor.shape)}"
                )
            if not tensor.is_floating_point() and not item.state[key].equal(tensor):
                raise MergeError(
                    f"{item.weights}: non-float tensor {key!r} differs from {first.weights}; "
                    "only floating-point weights can be merged"
                )


def recorded_init(items: list[MergeInput]) -> Path:
    """The initialisation every input records (`vitkd.student_init`), when they all agree."""
    inits = [item.config.get("vitkd", {}).get("student_init") for item in items]
    for item, init in zip(items, inits, strict=True):
        if not init:
            raise MergeError(
                f"{item.path / CONFIG_NAME} records no initialisation (vitkd.student_init): pass "
                "--base DIR, the export of the common step-0 student (python -m vitkd.train "
                "--save_init DIR writes it)"
            )
    if len({str(Path(i).expanduser().resolve()) for i in inits}) > 1:
        listing = ", ".join(f"{item.path}: {init}" for item, init in zip(items, inits, strict=True))
        raise MergeError(
            f"the inputs start from different initialisations ({listing}); task vectors are "
            "only comparable from one shared initialisation"
        )
    return Path(inits[0]).expanduser()
