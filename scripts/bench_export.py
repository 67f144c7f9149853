"""Benchmark the ONNX deployment variants on the CPU: fp32 vs fp16 vs int8 (dynamic, static).

Every variant is measured on the same held-out sample-slide tiles against the fp32 PyTorch
model: per-tile CLS cosine (min / p01 / median), kNN label agreement (leave-one-out kNN on
k-means pseudo-labels of the fp32 embeddings), tiles/s through onnxruntime and, in the same
run, through PyTorch fp32 (re-measured next to each variant, so load drift on a shared machine
shows). The gate column is the export's default gate for the variant (p01 cosine). The last
line is `ratio=<int8 (dynamic) onnxruntime tiles/s / PyTorch fp32 tiles/s>`.

The default model is a randomly initialised ViT-S/14 (seeded): a random ViT has none of the
large outlier activations of a trained one, so its int8 fidelity is an upper bound; pass a
trained student (`--model runs/vitkd/<run>/export`) for the real number.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vitkd.deploy import onnx_graph
from vitkd.deploy.artefact import derive_variant, measure, split_tiles
from vitkd.deploy.gate import DEFAULT_MIN_COSINE, GATE_STAT
from vitkd.deploy.measure import embed_all, torch_runner
from vitkd.export import load_source
from vitkd.models import build_backbone

VARIANTS = ("fp32", "fp16", "int8", "int8-static")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        default="vit_small_patch14_reg4_dinov2",
        help="timm name (random init, seed 0), vitkd export folder or .ckpt",
    )
    p.add_argument("--model-kwargs", default="{}", help="JSON kwargs for a timm name")
    p.add_argument("--slides", nargs="+", type=Path, help="default: the sample slides")
    p.add_argument("--tiles", type=int, default=32, help="held-out tiles measured")
    p.add_argument("--calibration-tiles", type=int, default=32, help="for int8-static")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--time-s", type=float, default=3.0, help="seconds per speed measurement")
    p.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads (0: torch's)")
    return p.parse_args()


def load_model(args: argparse.Namespace):
    """The fp32 backbone under test."""
    path = Path(args.model)
    if path.exists():
        return load_source(path)
    torch.manual_seed(0)
    return build_backbone(args.model, **json.loads(args.model_kwargs)).eval()


def main() -> None:
    """Run every variant and print the markdown table, then `ratio=`."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backbone = load_model(args)
    size = backbone.spec.img_size
    tiles, calibration = split_tiles(args.slides, size, args.tiles, args.calibration_tiles)
    reference = embed_all(torch_runner(backbone), tiles, args.batch_size)
    params = sum(p.numel() for p in backbone.parameters()) / 1e6
    print(
        f"# model {backbone.spec.arch} {params:.1f} M params, {size} px, {len(tiles)} held-out "
        f"tiles (+{len(calibration)} calibration), batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"onnxruntime {__import__('onnxruntime').__version__}, {platform.processor() or platform.machine()}"
    )
    print()
    print(
        f"| variant | MB | cosine min | cosine {GATE_STAT} | cosine median | kNN label agreement "
        "| kNN neighbour overlap | onnxruntime tiles/s | PyTorch fp32 tiles/s | speed-up | gate |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    speeds: dict[str, float] = {}
    torch_speeds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        fp32 = onnx_graph.export_onnx(backbone, work / "fp32.onnx")
        export_s = time.perf_counter() - start
        for variant in VARIANTS:
            path = derive_variant(fp32, variant, work, calibration)
            r = measure(backbone, path, tiles, args.batch_size, args.time_s, reference)
            c, tps = r["cosine"], r["tiles_per_s"]
            speeds[variant] = tps["onnxruntime"]
            torch_speeds.append(tps["pytorch_fp32"])
            gate = DEFAULT_MIN_COSINE[variant]
            verdict = "pass" if c[GATE_STAT] >= gate else f"FAIL (<{gate})"
            print(
                f"| {variant} | {r['bytes'] / 1e6:.1f} | {c['min']:.6f} | {c[GATE_STAT]:.6f} "
                f"| {c['median']:.6f} | {r['probe']['knn_label_agreement']:.3f} "
                f"| {r['probe']['knn_neighbour_overlap']:.3f} | {tps['onnxruntime']:.1f} "
                f"| {tps['pytorch_fp32']:.1f} | {tps['onnxruntime'] / tps['pytorch_fp32']:.2f} "
                f"| {verdict} ({gate}) |"
            )
    base = float(np.mean(torch_speeds))
    print()
    print(
        f"PyTorch fp32: {base:.1f} tiles/s (mean of {len(torch_speeds)} measurements, "
        f"{min(torch_speeds):.1f}-{max(torch_speeds):.1f}); fp32 ONNX export took {export_s:.1f} s"
    )
    print(f"ratio_int8_vs_onnx_fp32={speeds['int8'] / speeds['fp32']:.2f}")
    print(f"ratio={speeds['int8'] / base:.2f}")


if __name__ == "__main__":
    main()
