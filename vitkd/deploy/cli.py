"""The `--format onnx` options of `python -m vitkd.export` and what they run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vitkd.deploy.artefact import MODEL_NAME, REPORT_NAME, export_artefact, variant_of
from vitkd.deploy.gate import DEFAULT_MIN_COSINE, GATE_STAT, GateRefusedError

EXIT_REFUSED = 3


def add_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    """The ONNX options, in their own help group."""
    group = parser.add_argument_group(
        "ONNX deployment (--format onnx)",
        f"writes {MODEL_NAME} + {REPORT_NAME} only when the artefact's CLS embeddings on held-out "
        f"slide tiles keep a {GATE_STAT} cosine to fp32 PyTorch >= the gate "
        f"(defaults {DEFAULT_MIN_COSINE}); exit {EXIT_REFUSED} and nothing written otherwise",
    )
    group.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    group.add_argument(
        "--quantize",
        choices=["none", "int8", "int8-static"],
        default="none",
        help="int8: dynamic (no data); int8-static: activation ranges calibrated on slide tiles",
    )
    group.add_argument(
        "--slides",
        nargs="+",
        type=Path,
        help="slides for held-out and calibration tiles (default: the sample slides)",
    )
    group.add_argument(
        "--slide-mpp", type=float, help="level-0 um/px for slides whose files carry none"
    )
    group.add_argument("--tiles", type=int, default=64, help="held-out tiles measured")
    group.add_argument("--calibration-tiles", type=int, default=64, help="for int8-static")
    group.add_argument("--min-cosine", type=float, help="the gate (default: per variant)")
    group.add_argument("--batch-size", type=int, default=16)
    group.add_argument("--opset", type=int, default=18)
    group.add_argument("--time-s", type=float, default=2.0, help="seconds per speed measurement")


def run_onnx(args: argparse.Namespace, backbone: object, source: dict) -> int:
    """Export, gate and report; the exit status of the command."""
    try:
        variant = variant_of(args.dtype, args.quantize)
        report = export_artefact(
            backbone,  # type: ignore[arg-type]
            args.out,
            variant,
            slides=args.slides,
            n_tiles=args.tiles,
            n_calibration=args.calibration_tiles,
            min_cosine=args.min_cosine,
            batch_size=args.batch_size,
            time_s=args.time_s,
            opset=args.opset,
            source=source,
            slide_mpp=args.slide_mpp,
        )
    except GateRefusedError as err:
        print(json.dumps(err.report, indent=2))
        print(f"error: {err}", file=sys.stderr)
        return EXIT_REFUSED
    except (ImportError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    speed = report["tiles_per_s"]
    print(
        f"exported {variant} ONNX to {Path(args.out) / MODEL_NAME}: {GATE_STAT} cosine "
        f"{report['cosine'][GATE_STAT]:.6f} (gate {report['gate']['min_cosine']}), kNN label "
        f"agreement {report['probe']['knn_label_agreement']:.3f}, onnxruntime "
        f"{speed['onnxruntime']:.1f} tiles/s vs PyTorch fp32 {speed['pytorch_fp32']:.1f} on CPU"
    )
    return 0
