"""Adaptive tile selection and crop curriculum vs the uniform demo, at equal steps.

Each arm is one `python -m vitkd.train` run of `configs/demo.yaml` (the shipped demo teacher
and slides) with its overrides, in its own process and run folder. Per arm:

- fidelity of the EMA student to the teacher on the held-out tiles, from the run's
  `summary.json`: CLS and patch `pc_r2`, centred kNN agreement;
- probe retention: kNN (k = 20) and logistic balanced accuracy of the exported student on
  labelled tile folders, divided by the teacher's (`bench_quality.probe_scores`);
- wall time.

The last line is ``ratio=<adaptive CLS pc_r2 / uniform CLS pc_r2>`` (first seed).

    python scripts/bench_sampling.py --labeled ../shared/data/labeled/tcga-luad-lusc
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ROOT = Path(__file__).resolve().parents[1]

CURRICULUM = (
    "{global_scale_min: {kind: linear, start: 0.6, end: 0.32, stop: 0.5},"
    " augment_p: {kind: linear, start: 0.3, end: 1.0, stop: 0.5}}"
)
# arm -> (what it changes, overrides of the demo)
ARMS = {
    "uniform": ("the demo as shipped", []),
    "adaptive": (
        "data.sampling.kind adaptive (floor 0.2, momentum 0.9)",
        ["--data.sampling.kind", "adaptive"],
    ),
    "adaptive-floor0.5": (
        "adaptive, half the draws uniform",
        ["--data.sampling.kind", "adaptive", "--data.sampling.floor", "0.5"],
    ),
    "curriculum": (
        "global_scale_min 0.6 -> 0.32 and augment_p 0.3 -> 1 (linear, first half)",
        ["--data.curriculum", CURRICULUM],
    ),
}


def train(arm: str, seed: int, steps: int, runs: Path) -> Path:
    """Run one arm; returns its run folder (the one holding summary.json)."""
    root = runs / f"{arm}-seed{seed}"
    if not list(root.glob("**/summary.json")):
        cmd = [sys.executable, "-m", "vitkd.train", "--config", str(ROOT / "configs/demo.yaml")]
        cmd += ["--trainer.default_root_dir", str(root), "--trainer.max_steps", str(steps)]
        cmd += ["--seed_everything", str(seed), "--data.seed", str(seed), *ARMS[arm][1]]
        print(" ".join(cmd), flush=True)
        log = root.with_suffix(".log")
        root.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            done = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode:
            raise SystemExit(f"{arm} seed {seed} failed (exit {done.returncode}); see {log}")
    return sorted(root.glob("**/summary.json"))[-1].parent


def fidelity(run: Path) -> dict[str, float]:
    """EMA fidelity after training, from the run's summary."""
    summary = json.loads((run / "summary.json").read_text())
    ema = summary["fidelity_after"]["ema"]
    return {
        "cls pc_r2": ema["cls"]["pc_r2"],
        "patch pc_r2": ema["patch"]["pc_r2"],
        "cls knn centred": ema["cls"]["knn_agreement_centred"],
        "seconds": summary["seconds"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--arms", nargs="+", default=["uniform", "adaptive", "curriculum"], choices=list(ARMS)
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=500, help="optimiser steps per run (demo: 500)")
    p.add_argument("--labeled", nargs="*", type=Path, default=[], help="labelled tile folders")
    p.add_argument("--runs", type=Path, default=ROOT / "runs/bench_sampling")
    p.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = p.parse_args(argv)

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_quality import demo_config, load_labelled, probe_scores, teacher_config

    from evaluation.encoder import embed_images, load_encoder

    sets = [load_labelled(root) for root in args.labeled]
    from vitkd.models import build_teacher
    from vitkd.models.builtin import resolve_weights

    t_cfg = teacher_config("builtin:demo-teacher", demo_config())
    path = resolve_weights(t_cfg.weights, "--teacher")
    teacher = build_teacher(t_cfg.name, path, **t_cfg.kwargs) if sets else None
    teacher_scores = {}
    for s in sets:
        x = embed_images(teacher, s.images, 64, progress=False)
        teacher_scores.update({f"{s.name}/{k}": v for k, v in probe_scores(x, s).items()})
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            started = time.perf_counter()
            run = train(arm, seed, args.steps, args.runs)
            row = {"arm": arm, "seed": seed, **fidelity(run)}
            student = load_encoder(str(run / "export")) if sets else None
            for s in sets:
                x = embed_images(student, s.images, 64, progress=False)
                for k, v in probe_scores(x, s).items():
                    row[f"{s.name}/{k}"] = v
                    row[f"{s.name}/{k} retention"] = v / teacher_scores[f"{s.name}/{k}"]
            print(json.dumps(row), f"({time.perf_counter() - started:.0f} s)", flush=True)
            rows.append(row)
    keys = [k for k in rows[0] if k not in ("arm", "seed")]
    lines = ["| arm | seed | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        lines.append(f"| {row['arm']} | {row['seed']} | " + " | ".join(cells) + " |")
    if teacher_scores:
        lines.append("")
        lines.append("teacher: " + ", ".join(f"{k} {v:.3f}" for k, v in teacher_scores.items()))
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    first = {r["arm"]: r for r in rows if r["seed"] == args.seeds[0]}
    if "uniform" in first and "adaptive" in first:
        ratio = first["adaptive"]["cls pc_r2"] / first["uniform"]["cls pc_r2"]
        print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
