"""Progressive distillation against direct distillation, at equal total steps (issue 15).

With a teacher (default: the demo teacher) and the shipped sample slides:

1. direct: `scripts/progressive.py` with one stage, teacher -> small (the demo student) for S
   steps (or --direct: an export of that same run, e.g. bench_merge's all-domain student);
2. chain: `scripts/progressive.py` with two stages, teacher -> intermediate (3 blocks, width
   144) for S / 2 steps, then intermediate -> small for S / 2 steps, the second stage taught by
   the first stage's export;
3. scores the teacher, the random-init small student, both small students and the intermediate
   with bench_quality's `evaluate_encoders` (probes, pc_r2 / CKA / centred kNN fidelity to the
   *original* teacher, RI under simulated stains), and per domain (slide) the CLS `pc_r2` to the
   teacher on every tissue tile (bench_merge's `domain_fidelity`; training slides).

Finished stages under --workdir are reused (the plans resume). The last line is
``ratio=<chain small / direct small, mean per-domain pc_r2>``.

    python scripts/bench_progressive.py --labeled ../shared/data/labeled/tcga-luad-lusc \\
        ../shared/data/labeled/kather16-samples ../shared/data/labeled/crc7k-mini
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
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_merge import (  # noqa: E402  (the scripts folder is on the path only now)
    SAMPLE_DOMAINS,
    attach_domains,
    domain_fidelity,
    domain_tiles,
    sample_domains_csv,
    table,
)
from bench_quality import add_evaluation_arguments, evaluate_encoders, load_labelled  # noqa: E402

INTERMEDIATE = {"depth": 3, "embed_dim": 144, "num_heads": 3, "img_size": 112}


def stage(name: str, steps: int, student: dict | None = None) -> dict:
    """A plan stage on the demo config for `steps` steps (`student`: its kwargs)."""
    args = [f"--trainer.max_steps={steps}", "--trainer.enable_progress_bar=false"]
    if student is not None:
        args += ["--model.student.kwargs", json.dumps(student)]
    return {"name": name, "config": str(ROOT / "configs" / "demo.yaml"), "args": args}


def run(plan: dict, folder: Path) -> list[Path]:
    """Write the plan and run it with scripts/progressive.py (resumes); the stage exports."""
    import progressive

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    exports = progressive.run_plan(progressive.read_plan(path), folder)
    return exports


def seconds(export: Path) -> float:
    """Training seconds of the run that wrote this export (a stage's, or a run folder's)."""
    runs = export.parent / "runs"
    found = sorted(runs.glob("**/summary.json")) or [export.parent / "summary.json"]
    return float(json.loads(found[-1].read_text())["seconds"])


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run both plans, evaluate, write the table, print the ratio."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=200, help="S: total steps of each arm")
    p.add_argument("--teacher", default="builtin:demo-teacher", help="model.teacher.weights")
    p.add_argument(
        "--direct",
        type=Path,
        help="reuse this export as the direct arm instead of training it (e.g. bench_merge's "
        "all-domain student: the same demo run, slides, seed and steps)",
    )
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_progressive")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu_progressive.md")
    add_evaluation_arguments(p)
    args = p.parse_args(argv)
    logging.getLogger("lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode")
    started = time.perf_counter()
    work = args.workdir.resolve()
    half = args.steps // 2
    if args.direct is not None:
        direct = args.direct.resolve()
    else:
        [direct] = run(
            {"teacher": args.teacher, "stages": [stage("small", args.steps)]}, work / "direct"
        )
    middle, small = run(
        {
            "teacher": args.teacher,
            "stages": [stage("intermediate", half, INTERMEDIATE), stage("small", half)],
        },
        work / "chain",
    )

    from evaluation.encoder import load_encoder
    from vitkd.models import build_student, build_teacher
    from vitkd.models.builtin import resolve_weights

    model = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())["model"]
    t, s = model["teacher"], model["student"]
    with torch.random.fork_rng():
        torch.manual_seed(1)  # the module's student seed (seed + 1): the direct arm's start
        init = build_student(s["name"], with_mask_token=False, **s["kwargs"]).eval()
    labels = {
        "direct": f"direct: teacher -> small, {args.steps} steps",
        "middle": f"chain stage 1: intermediate, {half} steps",
        "small": f"chain: teacher -> intermediate -> small, {half} + {half} steps",
    }
    encoders = {
        "teacher": (
            "teacher",
            build_teacher(t["name"], resolve_weights(args.teacher, "--teacher"), **t["kwargs"]),
        ),
        "random-init small student": ("baseline", init),
        labels["direct"]: ("baseline", load_encoder(str(direct))),
        labels["middle"]: ("intermediate", load_encoder(str(middle))),
        labels["small"]: ("chain", load_encoder(str(small))),
    }
    times = {
        labels["direct"]: seconds(direct),
        labels["middle"]: seconds(middle),
        labels["small"]: seconds(middle) + seconds(small),
    }
    sets = [load_labelled(root) for root in args.labeled]
    rows, _, conds = evaluate_encoders(encoders, sets, args, times)
    csv = sample_domains_csv(work / "domains.csv")
    tiles = {d: domain_tiles(csv, d, slide_mpp=0.5) for d in SAMPLE_DOMAINS}
    attach_domains(rows, domain_fidelity(encoders, tiles))
    meta = [
        f"- teacher: {args.teacher} (4 blocks, width 192); small: the demo student (2 blocks, "
        f"width 96); intermediate: {INTERMEDIATE}",
        f"- budget: {args.steps} steps per arm (chain: {half} + {half}), batch 32, seed 0, "
        "demo config, both sample slides",
        f"- per-domain tiles: {', '.join(f'{d} {len(v)}' for d, v in tiles.items())}",
        f"- labelled sets: {', '.join(f'{x.name} ({len(x.labels)} tiles)' for x in sets)}",
        f"- conditions: {len(conds)} ({', '.join(args.stains)} x {', '.join(args.scanners)}); "
        f"RI k = {args.ri_k}",
        f"- wall time: {time.perf_counter() - started:.0f} s, {torch.get_num_threads()} threads",
    ]
    text = (
        "\n".join(meta)
        + "\n\n"
        + table(rows, list(SAMPLE_DOMAINS), [("kind", "kind"), ("train s", "seconds")])
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"# bench_progressive ({time.strftime('%Y-%m-%d')})\n\n{text}")
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(text)
    print(f"wrote {args.out}")
    chain = next(r for r in rows if r["encoder"] == labels["small"])
    baseline = next(r for r in rows if r["encoder"] == labels["direct"])
    print(f"ratio={chain['domain/mean'] / baseline['domain/mean']:.4f}")


if __name__ == "__main__":
    main()
