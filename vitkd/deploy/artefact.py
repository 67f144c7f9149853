"""Build, measure, gate and write one ONNX deployment artefact (fp32, fp16, int8, int8-static)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from slides.atomic import atomic_path, write_text_atomic
from vitkd.deploy import onnx_graph
from vitkd.deploy.gate import GATE_STAT, check_gate, min_cosine_for
from vitkd.deploy.held_out import slide_tiles
from vitkd.deploy.measure import (
    cosine_distribution,
    embed_all,
    knn_agreement,
    onnx_runner,
    tiles_per_second,
    torch_runner,
)

if TYPE_CHECKING:
    from vitkd.models import Backbone

VARIANTS = ("fp32", "fp16", "int8", "int8-static")
MODEL_NAME = "model.onnx"
REPORT_NAME = "export_report.json"


def variant_of(dtype: str, quantize: str) -> str:
    """`--dtype` and `--quantize` as one variant name."""
    if quantize == "none":
        if dtype not in ("fp32", "fp16"):
            raise ValueError(f"--dtype {dtype!r}: choose fp32 or fp16")
        return dtype
    if dtype != "fp32":
        raise ValueError(f"--quantize {quantize} quantises the fp32 graph; drop --dtype {dtype}")
    if quantize not in ("int8", "int8-static"):
        raise ValueError(f"--quantize {quantize!r}: choose none, int8 or int8-static")
    return quantize


def split_tiles(
    slides: Sequence[str | Path] | None,
    size: int,
    n_eval: int,
    n_calibration: int,
    slide_mpp: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint evaluation and calibration tiles of the slides (a fixed shuffle of one draw)."""
    tiles = slide_tiles(slides, size, n_eval + n_calibration, slide_mpp=slide_mpp)
    order = torch.randperm(len(tiles), generator=torch.Generator().manual_seed(0))
    return tiles[order[:n_eval]], tiles[order[n_eval:]]


def build_variant(
    backbone: Backbone,
    variant: str,
    workdir: Path,
    calibration: torch.Tensor | None = None,
    opset: int = 18,
) -> Path:
    """The ONNX graph of `variant` in `workdir` (the fp32 graph is built first in any case)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: choose one of {VARIANTS}")
    fp32 = onnx_graph.export_onnx(backbone, workdir / "fp32.onnx", opset)
    return derive_variant(fp32, variant, workdir, calibration)


def derive_variant(
    fp32: Path, variant: str, workdir: Path, calibration: torch.Tensor | None = None
) -> Path:
    """`variant` of an fp32 graph, written into `workdir` (`fp32` itself for `fp32`)."""
    out = workdir / f"{variant}.onnx"
    if variant == "fp32":
        return fp32
    if variant == "fp16":
        return onnx_graph.to_fp16(fp32, out)
    if variant == "int8":
        return onnx_graph.quantize_int8_dynamic(fp32, out)
    if calibration is None or len(calibration) == 0:
        raise ValueError("int8-static needs calibration tiles (--calibration-tiles > 0)")
    return onnx_graph.quantize_int8_static(fp32, out, calibration)


def measure(
    backbone: Backbone,
    onnx_path: Path,
    tiles: torch.Tensor,
    batch_size: int = 16,
    time_s: float = 2.0,
    reference: Any = None,
) -> dict[str, Any]:
    """Cosine distribution and kNN agreement against fp32 PyTorch, and CPU tiles/s of both.

    `reference`: precomputed fp32 PyTorch embeddings of `tiles` (recomputed when None).
    """
    ref_run = torch_runner(backbone)
    ref = embed_all(ref_run, tiles, batch_size) if reference is None else reference
    # PyTorch timed before the session exists: onnxruntime's idle threads spin-wait for work
    # after each run and took 30-60 % of the 2 cores from a PyTorch timing that followed
    torch_speed = tiles_per_second(ref_run, tiles, batch_size, time_s)
    got_run = onnx_runner(onnx_graph.cpu_session(onnx_path))
    got = embed_all(got_run, tiles, batch_size)
    return {
        "n_tiles": len(tiles),
        "cosine": cosine_distribution(ref, got),
        "probe": knn_agreement(ref, got),
        "tiles_per_s": {
            "onnxruntime": tiles_per_second(got_run, tiles, batch_size, time_s),
            "pytorch_fp32": torch_speed,
        },
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "bytes": onnx_path.stat().st_size,
    }


def export_artefact(
    backbone: Backbone,
    out_dir: str | Path,
    variant: str,
    slides: Sequence[str | Path] | None = None,
    n_tiles: int = 64,
    n_calibration: int = 64,
    min_cosine: float | None = None,
    batch_size: int = 16,
    time_s: float = 2.0,
    opset: int = 18,
    source: dict[str, Any] | None = None,
    slide_mpp: float | None = None,
) -> dict[str, Any]:
    """Build `variant`, measure it on held-out slide tiles, and write `model.onnx` +
    `export_report.json` into `out_dir` only when it passes the gate.

    Raises:
        GateRefusedError: below the gate; nothing is written, the error carries the report.
    """
    onnx_graph.require_onnx()
    gate = min_cosine_for(variant, min_cosine)
    n_cal = n_calibration if variant == "int8-static" else 0
    tiles, calibration = split_tiles(slides, backbone.spec.img_size, n_tiles, n_cal, slide_mpp)
    with tempfile.TemporaryDirectory(prefix="vitkd-export-") as tmp:
        path = build_variant(backbone, variant, Path(tmp), calibration, opset)
        report = {
            "variant": variant,
            "opset": opset,
            "gate": {"stat": GATE_STAT, "min_cosine": gate},
            "slides": [str(s) for s in slides] if slides else "samples",
            "n_calibration_tiles": len(calibration),
            **measure(backbone, path, tiles, batch_size, time_s),
        }
        check_gate(report)
        out = Path(out_dir).expanduser()
        metadata = {
            "spec": backbone.spec.to_dict(),
            "embed_dim": backbone.embed_dim,
            "patch_size": backbone.patch_size,
            "variant": variant,
            "source": source or {},
            "fidelity": {"cosine": report["cosine"], "probe": report["probe"]},
        }
        out.mkdir(parents=True, exist_ok=True)
        # the model first, the report last: a folder with a report is complete
        with atomic_path(out / MODEL_NAME) as final:
            onnx_graph.write_metadata(path, final, metadata)
    write_text_atomic(out / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    return report
