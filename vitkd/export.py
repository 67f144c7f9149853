"""`python -m vitkd.export SOURCE --out DIR`: a student as timm safetensors or a gated ONNX artefact."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Literal

import torch

import vitkd  # noqa: F401  (offline environment first)
from vitkd.distill.adaptor_export import adaptor_extra
from vitkd.distill.config import StudentConfig, as_config
from vitkd.models import Backbone, build_student, export_backbone

PREFIXES = {"ema": "ema.", "student": "student."}


class CheckpointError(ValueError):
    """A checkpoint that is not a vitkd distillation checkpoint."""


def backbone_from_checkpoint(
    path: str | Path, which: Literal["ema", "student"] = "ema"
) -> Backbone:
    """The EMA (default, the final model) or online student of a vitkd `.ckpt`, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    hparams = checkpoint.get("hyper_parameters", {})
    if "student" not in hparams or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a vitkd distillation checkpoint (no student hyper-parameters); "
            "export a run's .ckpt from its checkpoints/ folder"
        )
    cfg = as_config(StudentConfig, hparams["student"])
    prefix = PREFIXES[which]
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    backbone = build_student(cfg.name, with_mask_token="mask_token" in state, **cfg.kwargs)
    backbone.load_state_dict(state, strict=True)
    return backbone.eval()


def export_checkpoint(
    path: str | Path, out_dir: str | Path, which: Literal["ema", "student"] = "ema"
) -> Path:
    """Write `model.safetensors` + timm `config.json` of a checkpoint's student into `out_dir`."""
    backbone = backbone_from_checkpoint(path, which)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    hparams = checkpoint.get("hyper_parameters", {})
    teacher = hparams.get("teacher", {}).get("name")
    extra: dict[str, Any] = {"teacher": teacher, "source": which, "checkpoint": str(path)}
    # the adaptors first: a folder with config.json is complete
    extra.update(adaptor_extra(out_dir, hparams, backbone.embed_dim, checkpoint["state_dict"]))
    return export_backbone(backbone, out_dir, extra=extra)


def load_source(path: Path, which: Literal["ema", "student"] = "ema") -> Backbone:
    """The fp32 backbone of a vitkd checkpoint (`which` branch) or export folder."""
    if path.is_dir():
        from vitkd.models import load_exported

        return load_exported(path).eval()
    return backbone_from_checkpoint(path, which)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m vitkd.export", description=__doc__)
    parser.add_argument(
        "checkpoint",
        type=Path,
        help="a vitkd training checkpoint (.ckpt); with --format onnx also an export folder",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--which",
        choices=sorted(PREFIXES),
        default="ema",
        help="the EMA shadow (the final model, default) or the online student",
    )
    parser.add_argument(
        "--format",
        choices=["safetensors", "onnx"],
        default="safetensors",
        help="safetensors + timm config.json (default), or a gated ONNX artefact",
    )
    from vitkd.deploy.cli import add_onnx_arguments, run_onnx

    add_onnx_arguments(parser)
    args = parser.parse_args(argv)
    if args.format == "onnx":
        try:
            backbone = load_source(args.checkpoint, args.which)
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return run_onnx(args, backbone, {"path": str(args.checkpoint), "which": args.which})
    try:
        out = export_checkpoint(args.checkpoint, args.out, args.which)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported {args.which} student of {args.checkpoint} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
