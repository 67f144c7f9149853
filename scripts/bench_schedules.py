"""Temperature schedules against the default warm-up, at equal steps, on the prototype recipe.

Temperatures only matter where targets are distributions: `targets: prototypes` (DINO + iBOT
through teacher heads fitted first). In one process, at equal steps, batch and seed (the demo
student, `bench_quality`'s `prototypes · light · pathology` recipe), this distils:

- `default`: teacher temperature warm-up 0.04 -> 0.07 over the first 30 % (DINOv2);
- `anneal 0.07 -> 0.04`: `losses.teacher_temp_schedule` cosine from soft to sharp targets;
- `student 0.1 -> 0.05`: the default teacher, `losses.student_temp_schedule` cosine;

and scores them with `bench_quality.evaluate_encoders` (probes, fidelity, robustness). The last
line is ``ratio=<best scheduled arm kNN / default kNN>`` on the first labelled folder.

    python scripts/bench_schedules.py --labeled ../shared/data/labeled/tcga-luad-lusc \\
        ../shared/data/labeled/kather16-samples
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality as bq

ROOT = Path(__file__).resolve().parents[1]
RECIPE = bq.RECIPES["prototypes · light · pathology"]


def arms() -> dict[str, object]:
    """Arm name -> LossConfig."""
    from vitkd.distill.config import LossConfig, Schedule

    return {
        "default": LossConfig(),
        "anneal 0.07 -> 0.04": LossConfig(
            teacher_temp_schedule=Schedule(kind="cosine", start=0.07, end=0.04)
        ),
        "student 0.1 -> 0.05": LossConfig(
            student_temp_schedule=Schedule(kind="cosine", start=0.1, end=0.05)
        ),
    }


def main(argv: list[str] | None = None) -> None:
    """Distil every arm, evaluate, write the table, print the ratio."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--teacher", default="builtin:demo-teacher", help="builtin:<name> or export")
    p.add_argument("--slides", nargs="+", default=["samples"], help="unlabelled slides")
    p.add_argument("--slide-mpp", type=float, default=0.5, help="MPP for slides without one")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per student")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    bq.add_evaluation_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu_schedules.md")
    args = p.parse_args(argv)

    from vitkd.models import build_teacher
    from vitkd.models.builtin import resolve_weights

    logging.getLogger("lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode")
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    sets = [bq.load_labelled(root) for root in args.labeled]
    demo = bq.demo_config()
    t_cfg = bq.teacher_config(args.teacher, demo)
    path = resolve_weights(t_cfg.weights, "--teacher")
    encoders: dict[str, tuple] = {
        "teacher": ("teacher", build_teacher(t_cfg.name, path, **t_cfg.kwargs)),
    }
    seconds: dict[str, float] = {}
    for name, losses in arms().items():
        print(f"distilling {name} ({args.steps} steps, batch {args.batch_size})", flush=True)
        model, seconds[name] = bq.distil(RECIPE, t_cfg, demo, args, losses=losses)
        encoders[name] = ("student", model)
    rows, ri_set, conds = bq.evaluate_encoders(encoders, sets, args, seconds)
    meta = {
        "teacher": args.teacher,
        "recipe": "prototypes · light · pathology (teacher heads fitted for 100 steps first)",
        "labelled sets": ", ".join(f"{s.name} ({len(s.labels)} tiles)" for s in sets),
        "budget per student": f"{args.steps} steps x batch {args.batch_size}, seed {args.seed}",
        "conditions": f"{len(conds)}: stains {args.stains} x scanners {args.scanners}",
        "RI": f"k = {args.ri_k}; reported on {ri_set}",
        "wall time": f"{time.perf_counter() - started:.0f} s, {torch.get_num_threads()} threads",
    }
    text = f"# bench_schedules ({time.strftime('%Y-%m-%d')})\n\n{bq.markdown(rows, sets, meta)}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(args.out)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(text)
    key = f"{sets[0].name}/knn"
    by_name = {r["encoder"]: r for r in rows}
    best = max(by_name[n][key] for n in arms() if n != "default")
    print(f"ratio={best / by_name['default'][key]:.4f}")


if __name__ == "__main__":
    main()
