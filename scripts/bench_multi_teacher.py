"""Two teachers at once, and nested (Matryoshka) sizes, against single-teacher students.

In one process, at equal steps, batch and seed (the demo student, `bench_quality`'s recipe
`features · light · pathology`), this distils:

- `A`: the demo teacher alone (`--teacher-a`, default `builtin:demo-teacher`);
- `B`: a second, different teacher alone (`--teacher-b`: an export folder, e.g. a second
  self-distillation run with another seed, architecture or patch size);
- `A+B`: both (`model.teachers`), fixed weights 1/1;
- `A+B · PHI-S`: both, each teacher's features standardised by PHI-S first;
- `A+B · drop 0.5`: both, each teacher's loss skipped with probability 0.5 per step (UNIC);
- `A+B · nested`: both, with nested sizes `--sizes` (default 96, 48, 24), scored at every size;

then scores every encoder with `bench_quality.evaluate_encoders` (kNN / logistic probes,
robustness index under simulated stains, fidelity to teacher A) and adds fidelity to teacher B
(`pc_r2_b`). Writes a Markdown table and JSON; the last lines are the two goals:

- `ratio=<A+B kNN / best single-teacher kNN>` on the first labelled folder (goal >= 1);
- `nested_keep=<1/4-size kNN / full-size kNN>` of the nested student (goal >= 0.9).

    python scripts/bench_multi_teacher.py --teacher-b runs/vitkd/<run>/export \\
        --labeled ../shared/data/labeled/tcga-luad-lusc ../shared/data/labeled/kather16-samples
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
RECIPE = bq.RECIPES[bq.ROBUST_RECIPE]
ARMS = ("A", "B", "A+B", "A+B · PHI-S", "A+B · drop 0.5", "A+B · nested")


def arm_options(arm: str, a, b, sizes: list[int]) -> tuple[object, dict]:
    """(teacher, module options) of one arm."""
    from dataclasses import replace

    from vitkd.distill.config import BalanceConfig

    if arm == "A":
        return a, {}
    if arm == "B":
        return b, {}
    both = {"teachers": [replace(a, key="A"), replace(b, key="B")]}
    if arm == "A+B · PHI-S":
        both["balance"] = BalanceConfig(standardize="phis", standardize_samples=512)
    elif arm == "A+B · drop 0.5":
        both["balance"] = BalanceConfig(teacher_drop=0.5)
    elif arm == "A+B · nested":
        both["matryoshka"] = sizes
    return None, both


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, distil every arm, evaluate, write the table, print the goals."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--teacher-a", default="builtin:demo-teacher", help="builtin:<name> or export")
    p.add_argument("--teacher-b", required=True, help="export folder of the second teacher")
    p.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 48, 24], help="nested sizes")
    p.add_argument("--slides", nargs="+", default=["samples"], help="unlabelled slides")
    p.add_argument("--slide-mpp", type=float, default=0.5, help="MPP for slides without one")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per student")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    bq.add_evaluation_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu_multi_teacher.md")
    args = p.parse_args(argv)

    from vitkd.distill.config import StudentConfig
    from vitkd.models import build_teacher
    from vitkd.models.builtin import resolve_weights

    logging.getLogger("lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode")
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    sets = [bq.load_labelled(root) for root in args.labeled]
    demo = bq.demo_config()
    a = bq.teacher_config(args.teacher_a, demo)
    b = bq.teacher_config(args.teacher_b, demo)
    s_cfg = StudentConfig(
        name=demo["model"]["student"]["name"], kwargs=dict(demo["model"]["student"]["kwargs"])
    )
    teacher_b = build_teacher(b.name, resolve_weights(b.weights, "--teacher-b"), **b.kwargs)
    encoders: dict[str, tuple] = {
        "teacher A": (
            "teacher",
            build_teacher(a.name, resolve_weights(a.weights, "A"), **a.kwargs),
        ),
        "teacher B": ("extra", teacher_b),
        "random-init student": ("baseline", bq.random_backbone(s_cfg, args.seed + 1)),
    }
    seconds: dict[str, float] = {}
    for arm in args.arms:
        teacher, options = arm_options(arm, a, b, args.sizes)
        print(f"distilling {arm} ({args.steps} steps, batch {args.batch_size})", flush=True)
        model, seconds[arm] = bq.distil(RECIPE, teacher, demo, args, **options)
        if arm == "A+B · nested":
            for m in sorted(args.sizes, reverse=True):
                encoders[f"{arm} @{m}"] = ("student", model, m)
                seconds[f"{arm} @{m}"] = seconds[arm]
        else:
            encoders[arm] = ("student", model)
    rows, ri_set, conds = bq.evaluate_encoders(encoders, sets, args, seconds)

    from evaluation.encoder import embed_images

    t_b = embed_images(teacher_b, sets[0].images, 64, progress=False)
    for row in rows:
        spec = encoders.get(row["encoder"])
        if spec is None or spec[0] == "teacher" or row["encoder"] == "teacher B":
            continue
        _, model, *rest = spec
        x = embed_images(model, sets[0].images, 64, progress=False, dim=rest[0] if rest else None)
        row["pc_r2_b"] = bq.fidelity_scores(x, t_b)["pc_r2"]

    first = sets[0].name
    by_name = {r["encoder"]: r for r in rows}
    singles = [by_name[n] for n in ("A", "B") if n in by_name]
    meta = {
        "teachers": f"A = {args.teacher_a} ({a.name}), B = {args.teacher_b} ({b.name})",
        "slides": ", ".join(args.slides),
        "labelled sets": ", ".join(f"{s.name} ({len(s.labels)} tiles)" for s in sets),
        "budget per student": f"{args.steps} steps x batch {args.batch_size}, seed {args.seed}",
        "recipe": bq.ROBUST_RECIPE,
        "conditions": f"{len(conds)}: stains {args.stains} x scanners {args.scanners}",
        "RI": f"k = {args.ri_k}; reported on {ri_set}",
        "wall time": f"{time.perf_counter() - started:.0f} s, {torch.get_num_threads()} threads",
    }
    table = bq.markdown(rows, sets, meta)
    extra = ["", "| encoder | pc_r2 to teacher A | pc_r2 to teacher B |", "| --- | --- | --- |"]
    extra += [
        f"| {r['encoder']} | {bq.fmt(r.get('pc_r2'))} | {bq.fmt(r.get('pc_r2_b'))} |"
        for r in rows
        if "pc_r2_b" in r
    ]
    text = f"# bench_multi_teacher ({time.strftime('%Y-%m-%d')})\n\n{table}\n" + "\n".join(extra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(args.out)
    json_out = args.out.with_suffix(".json")
    json_out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    print(text)
    print(f"wrote {args.out}")
    key = f"{first}/knn"
    if singles and "A+B" in by_name:
        best = max(r[key] for r in singles)
        print(f"ratio={by_name['A+B'][key] / best:.4f}  (A+B kNN / best single-teacher kNN)")
    nested = sorted(args.sizes, reverse=True)
    full, quarter = f"A+B · nested @{nested[0]}", f"A+B · nested @{nested[-1]}"
    if full in by_name and quarter in by_name:
        print(f"nested_keep={by_name[quarter][key] / by_name[full][key]:.4f}")


if __name__ == "__main__":
    main()
