"""Turn `--model` (+ `--weights`) into a Backbone: export folder, checkpoint, preset or timm name."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from vitkd.models import Backbone

log = logging.getLogger(__name__)

RANDOM_INIT = "random-init"
RANDOM_INIT_SEED = 0
EXPORT_WEIGHTS = "model.safetensors"
CHECKPOINT_SUFFIXES = (".ckpt",)
ONNX_SUFFIX = ".onnx"


class ModelResolutionError(ValueError):
    """`--model` / `--weights` do not name a usable model."""


@dataclass
class ResolvedModel:
    """A backbone ready to embed, with the provenance written into every output file.

    Args:
        backbone: the model; takes uint8 (B, 3, H, W) crops and normalises them itself.
        encoder: the name stored as the `encoder` attribute: the architecture, and for a
            folder or checkpoint also `<run>/<folder or file>`, so a run's student (`export`)
            and teacher (`teacher`) and two runs' students all get different names.
        weights_sha256: sha256 of the weights file, or `random-init`.
        source: what `--model` resolved to: `export`, `checkpoint`, `onnx`, `preset` or `timm`.
        arch: the timm architecture.
        origin: the resolved path of the export folder or checkpoint ("" for a name).
        role: what the export says it holds (`ema`, `student`, `random-init teacher`), if known.
        sizes: the nested (Matryoshka) embedding sizes the model was trained with, largest
            first; empty when it was not (then only its full width is valid for `--dim`).
    """

    backbone: Backbone
    encoder: str
    weights_sha256: str
    source: str
    arch: str = ""
    origin: str = ""
    role: str = ""
    sizes: tuple[int, ...] = ()


def _run_name(path: Path) -> str:
    """`<run>/<name>` of a model file or folder; a checkpoint's run is above `checkpoints/`."""
    parent = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return f"{parent.name}/{path.name}" if parent.name else path.name


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _looks_like_path(model: str) -> bool:
    suffixes = (*CHECKPOINT_SUFFIXES, ONNX_SUFFIX)
    return os.sep in model or model.startswith(".") or model.endswith(suffixes)


def resolve_model(
    model: str,
    weights: str | os.PathLike | None = None,
    which: str = "ema",
    model_kwargs: dict[str, Any] | None = None,
) -> ResolvedModel:
    """Build the backbone `--model` names, in this order.

    1. an existing folder: a vitkd export (`model.safetensors` + `config.json`);
    2. an existing `.ckpt` file: a vitkd training checkpoint (`which` branch: `ema` or `student`);
       an existing `.onnx` file: an artefact of `python -m vitkd.export --format onnx` (CPU
       onnxruntime, needs the `onnx` extra);
    3. otherwise a preset (`h-optimus-0`, `h0-mini`) or timm architecture name, with the local
       `weights` file (or HF-style folder) when given, else random initialisation with a fixed
       seed and a warning.

    Raises:
        ModelResolutionError: the combination cannot be resolved; the message says what to pass.
    """
    kwargs = dict(model_kwargs or {})
    path = Path(model).expanduser()
    if path.is_dir():
        return _from_export(path, weights, kwargs)
    if path.is_file() and path.suffix == ONNX_SUFFIX:
        return _from_onnx(path, weights, kwargs)
    if path.is_file():
        return _from_checkpoint(path, weights, which, kwargs)
    if _looks_like_path(model):
        raise ModelResolutionError(
            f"--model {model}: no such file or folder; pass a vitkd export folder, a vitkd .ckpt, "
            "a vitkd .onnx artefact, a preset name (h-optimus-0, h0-mini) or a timm architecture name."
        )
    return _from_name(model, weights, kwargs)


def _from_export(path: Path, weights: object, kwargs: dict[str, Any]) -> ResolvedModel:
    from vitkd.models import load_exported, read_config

    if weights is not None or kwargs:
        raise ModelResolutionError(
            f"--model {path} is an export folder that carries its own weights and config; "
            "drop --weights/--model-kwargs."
        )
    weights_file = path / EXPORT_WEIGHTS
    if not weights_file.is_file():
        raise ModelResolutionError(
            f"--model {path}: folder has no {EXPORT_WEIGHTS}; pass the folder written by "
            "`python -m vitkd.export`."
        )
    backbone = load_exported(path)
    path = path.resolve()
    block = read_config(path).get("vitkd", {})
    role = str(block.get("source", ""))
    arch = backbone.spec.arch
    return ResolvedModel(
        backbone,
        f"{arch} ({_run_name(path)})",
        sha256_file(weights_file),
        "export",
        arch=arch,
        origin=str(path),
        role=role,
        sizes=tuple(sorted(block.get("matryoshka") or (), reverse=True)),
    )


def _from_checkpoint(
    path: Path, weights: object, which: str, kwargs: dict[str, Any]
) -> ResolvedModel:
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise ModelResolutionError(
            f"--model {path} is a file but not a vitkd checkpoint (.ckpt); for a bare weights "
            "file pass the architecture as --model and the file as --weights."
        )
    if weights is not None or kwargs:
        raise ModelResolutionError(
            f"--model {path} is a vitkd checkpoint with its own weights and config; "
            "drop --weights/--model-kwargs."
        )
    from vitkd.export import backbone_from_checkpoint

    backbone = backbone_from_checkpoint(path, which=which)
    hparams = torch.load(path, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    path = path.resolve()
    arch = backbone.spec.arch
    return ResolvedModel(
        backbone,
        f"{arch} ({_run_name(path.with_name(path.stem))}:{which})",
        sha256_file(path),
        "checkpoint",
        arch=arch,
        origin=str(path),
        role=which,
        sizes=tuple(sorted(hparams.get("matryoshka") or (), reverse=True)),
    )


def _from_onnx(path: Path, weights: object, kwargs: dict[str, Any]) -> ResolvedModel:
    from vitkd.deploy.onnx_backbone import OnnxBackbone

    if weights is not None or kwargs:
        raise ModelResolutionError(
            f"--model {path} is an ONNX artefact with its own weights and config; "
            "drop --weights/--model-kwargs."
        )
    try:
        backbone = OnnxBackbone(path)
    except (ImportError, ValueError) as err:  # no onnx extra; not a vitkd artefact
        raise ModelResolutionError(f"--model {path}: {err}") from None
    path = path.resolve()
    arch = backbone.spec.arch
    return ResolvedModel(
        backbone,  # type: ignore[arg-type]  (the Backbone interface the embedder uses)
        f"{arch} ({_run_name(path)}:{backbone.variant})",
        sha256_file(path),
        "onnx",
        arch=arch,
        origin=str(path),
        role=backbone.variant,
    )


def _from_name(name: str, weights: object, kwargs: dict[str, Any]) -> ResolvedModel:
    from vitkd.models import PRESETS, build_backbone

    source = "preset" if name in PRESETS else "timm"
    if weights is None:
        log.warning(
            "--model %s without --weights: embedding with RANDOMLY INITIALISED weights "
            "(files are tagged weights_sha256=%s).",
            name,
            RANDOM_INIT,
        )
        # A fixed seed keeps random-init features identical across ranks and resumed runs.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            backbone = build_backbone(name, **kwargs)
        return ResolvedModel(backbone, name, RANDOM_INIT, source, arch=backbone.spec.arch)
    weights = Path(weights).expanduser()
    backbone = build_backbone(name, weights=weights, **kwargs)
    return ResolvedModel(backbone, name, _weights_digest(weights), source, arch=backbone.spec.arch)


def _weights_digest(weights: Path) -> str:
    """sha256 of a weights file, or of every file in a weights folder (names and bytes, sorted)."""
    if weights.is_file():
        return sha256_file(weights)
    digest = hashlib.sha256()
    for path in sorted(p for p in weights.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(weights)).encode())
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def check_dim(resolved: ResolvedModel, dim: int | None) -> None:
    """Refuse a `--dim` the model was not trained to give: a prefix of an embedding that was not
    trained nested carries no guarantee."""
    if dim is None:
        return
    width = resolved.backbone.embed_dim
    valid = resolved.sizes or (width,)
    if dim not in valid:
        trained = (
            f"it was trained with nested sizes {list(valid)}"
            if resolved.sizes
            else f"it was not trained with nested (Matryoshka) sizes, so only {width} is valid"
        )
        raise ModelResolutionError(f"--dim {dim}: {resolved.encoder} has width {width}; {trained}")
