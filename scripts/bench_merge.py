"""Branch-merge against one student on all domains, at equal total steps (issue 15).

With a teacher (default: the demo teacher) and a slide CSV whose `domain` column splits the
slides (default: the two shipped sample slides, `skin` = CMU-1, `colorectal` = TCGA-CR-7395):

1. writes the common initialisation (`python -m vitkd.train --save_init`), then distils with
   `python -m vitkd.train` (the demo config, every run from that initialisation):
   - one student on all domains for S steps (the baseline);
   - one branch per domain (`data.source.domains`) for S / n_domains steps each;
2. merges the branches with `python -m vitkd.merge`: averaging, task arithmetic (scale 1) and
   TIES (keep 0.2, scale 1);
3. scores every student with bench_quality's `evaluate_encoders` (LUAD/LUSC and the other
   labelled sets: kNN and logistic probes, pc_r2 / CKA / centred kNN fidelity to the teacher,
   RI under simulated stains, top-10 retrieval across stains), and per domain the CLS `pc_r2`
   to the teacher on every tissue tile of that domain's slides (the training slides: their
   tiles were seen, augmented, during training; the same tiles for every student).

Runs already finished under --workdir are reused. The last line is
``ratio=<TIES-merged / all-domain student, mean per-domain pc_r2>``.

    python scripts/bench_merge.py --labeled ../shared/data/labeled/tcga-luad-lusc \\
        ../shared/data/labeled/kather16-samples ../shared/data/labeled/crc7k-mini
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import (  # noqa: E402  (the scripts folder is on the path only now)
    add_evaluation_arguments,
    evaluate_encoders,
    fmt,
    load_labelled,
)

SAMPLE_DOMAINS = ("skin", "colorectal")  # slides.SAMPLE_SLIDES: CMU-1 (skin), TCGA-CR (colon)


def sample_domains_csv(path: Path) -> Path:
    """A slide CSV of the two shipped slides, one domain each."""
    from slides import SAMPLE_SLIDES

    rows = [f"{slide},{d}" for slide, d in zip(SAMPLE_SLIDES, SAMPLE_DOMAINS, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("path,domain\n" + "\n".join(rows) + "\n")
    return path


def train(run: Path, steps: int, options: list[str]) -> tuple[Path, float]:
    """`python -m vitkd.train` on the demo config into `run` (reused when it finished).

    Returns the export folder and the training seconds from `summary.json`.
    """
    summaries = sorted(run.glob("**/summary.json"))
    if not summaries:
        cmd = [sys.executable, "-m", "vitkd.train", f"--trainer.max_steps={steps}", *options]
        cmd += [f"--trainer.default_root_dir={run}", "--trainer.enable_progress_bar=false"]
        print(f"training {run.name}: {steps} steps", flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        summaries = sorted(run.glob("**/summary.json"))
    summary = json.loads(summaries[-1].read_text())
    return Path(summary["export"]), float(summary["seconds"])


def merge(out: Path, inputs: list[Path], *options: str) -> Path:
    """`python -m vitkd.merge` in this process."""
    from vitkd.merge.cli import main

    if main([*map(str, inputs), "--out", str(out), *options]) != 0:
        raise SystemExit(f"merging into {out} failed")
    return out


def domain_tiles(csv: Path, domain: str, slide_mpp: float, mpp: float = 0.5, size: int = 224):
    """Every tissue tile (uint8 RGB) of one domain's slides, in grid order, as training reads
    them (`data.source.slide_mpp` given to every slide, as the data module does)."""
    import slides

    tiles = []
    for path in slides.select_domains([csv], [domain]):
        with slides.open_slide(path, mpp=slide_mpp) as slide:
            grid = slides.make_grid(slide, mpp=mpp, size=size, min_tissue=0.5)
            tiles += [grid.read_tile(slide, i) for i in range(len(grid))]
    return tiles


def domain_fidelity(
    encoders: dict[str, tuple[str, torch.nn.Module]], tiles: dict[str, list]
) -> dict[str, dict[str, float]]:
    """Per encoder and domain, CLS `pc_r2` to the first encoder (the teacher) on the tiles."""
    from evaluation.encoder import embed_images
    from vitkd.metrics import pc_r2

    teacher = next(iter(encoders.values()))[1]
    reference = {d: embed_images(teacher, t, 64, progress=False) for d, t in tiles.items()}
    out: dict[str, dict[str, float]] = {}
    for name, (_, model) in list(encoders.items())[1:]:
        out[name] = {
            d: float(pc_r2(embed_images(model, t, 64, progress=False), reference[d]))
            for d, t in tiles.items()
        }
    return out


COLUMNS = [
    ("LUAD/LUSC kNN", "tcga-luad-lusc/knn"),
    ("LUAD/LUSC logistic", "tcga-luad-lusc/logistic"),
    ("kather16 kNN", "kather16-samples/knn"),
    ("crc7k kNN", "crc7k-mini/knn"),
    ("pc_r2 (LUAD/LUSC tiles)", "pc_r2"),
    ("kNN agree (centred)", "knn_agree_c"),
    ("RI kather16", "kather16-samples/ri"),
    ("RI crc7k", "crc7k-mini/ri"),
    ("RI LUAD/LUSC", "tcga-luad-lusc/ri"),
    ("top-10 x-staining", "top10_x_staining"),
]


def table(rows: list[dict], domains: list[str], extra: list[tuple[str, str]]) -> str:
    """Markdown: one row per encoder; `extra` are (title, key) columns before the scores."""
    cols = [*extra, *COLUMNS, *[(f"pc_r2 {d} tiles", f"domain/{d}") for d in domains]]
    cols.append(("pc_r2 domain mean", "domain/mean"))
    lines = [
        "| encoder | " + " | ".join(c for c, _ in cols) + " |",
        "| --- |" + " --- |" * len(cols),
    ]
    for r in rows:
        cells = [r.get(k) if isinstance(r.get(k), str) else fmt(r.get(k)) for _, k in cols]
        lines.append(f"| {r['encoder']} | " + " | ".join(c or "–" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def attach_domains(rows: list[dict], fidelity: dict[str, dict[str, float]]) -> None:
    """Put the per-domain pc_r2 (and their mean) into the rows."""
    for r in rows:
        scores = fidelity.get(r["encoder"])
        if scores:
            r.update({f"domain/{d}": v for d, v in scores.items()})
            r["domain/mean"] = float(np.mean(list(scores.values())))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, train, merge, evaluate, write the table, print the ratio."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=200, help="S: the all-domain student's steps")
    p.add_argument("--csv", type=Path, help="slide CSV with a domain column (default: samples)")
    p.add_argument("--domains", nargs="+", help="domains of --csv (default: the sample domains)")
    p.add_argument("--teacher", default="builtin:demo-teacher", help="model.teacher.weights")
    p.add_argument("--keep", type=float, default=0.2, help="TIES: fraction kept")
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_merge")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu_merge.md")
    add_evaluation_arguments(p)
    args = p.parse_args(argv)
    logging.getLogger("lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode")
    started = time.perf_counter()
    work = args.workdir.resolve()
    csv = args.csv.resolve() if args.csv else sample_domains_csv(work / "domains.csv")
    domains = args.domains or list(SAMPLE_DOMAINS)
    init = work / "init"
    base = [
        f"--model.teacher.weights={args.teacher}",
        f"--data.source.slides=[{csv}]",
        "--data.source.slide_mpp=0.5",
    ]
    branch_steps = args.steps // len(domains)
    exports, seconds = {}, {}
    label_all = f"all domains, {args.steps} steps"
    exports[label_all], seconds[label_all] = train(
        work / "all",
        args.steps,
        [*base, f"--data.source.domains=[{','.join(domains)}]", f"--save_init={init}"],
    )
    for d in domains:
        label = f"branch {d}, {branch_steps} steps"
        exports[label], seconds[label] = train(
            work / f"branch-{d}",
            branch_steps,
            [*base, f"--data.source.domains=[{d}]", f"--model.student.weights={init}"],
        )
    branches = [exports[f"branch {d}, {branch_steps} steps"] for d in domains]
    merged = {
        "merged: average": merge(work / "merged-average", branches, "--method", "average"),
        "merged: task arithmetic (scale 1)": merge(
            work / "merged-ta", branches, "--method", "task-arithmetic", "--scale", "1"
        ),
        f"merged: TIES (keep {args.keep})": merge(
            work / "merged-ties", branches, "--method", "ties", "--keep", str(args.keep)
        ),
    }

    from evaluation.encoder import load_encoder
    from vitkd.models import build_teacher
    from vitkd.models.builtin import resolve_weights

    t = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())["model"]["teacher"]
    teacher = build_teacher(t["name"], resolve_weights(args.teacher, "--teacher"), **t["kwargs"])
    encoders = {
        "teacher": ("teacher", teacher),
        "common init (step 0)": ("baseline", load_encoder(str(init))),
    }
    for label, path in exports.items():
        kind = "baseline" if label == label_all else "branch"
        encoders[label] = (kind, load_encoder(str(path)))
    for label, path in merged.items():
        encoders[label] = ("merged", load_encoder(str(path)))
    sets = [load_labelled(root) for root in args.labeled]
    rows, _, conds = evaluate_encoders(encoders, sets, args, seconds)
    tiles = {d: domain_tiles(csv, d, slide_mpp=0.5) for d in domains}
    attach_domains(rows, domain_fidelity(encoders, tiles))
    meta = [
        f"- teacher: {args.teacher}; student: the demo student (2 blocks, width 96), demo config",
        f"- domains: {', '.join(f'{d} ({len(tiles[d])} tiles)' for d in domains)} from {csv.name}",
        f"- budget: all-domain student {args.steps} steps; {len(domains)} branches x "
        f"{branch_steps} steps, batch 32, seed 0, all from one saved initialisation",
        f"- labelled sets: {', '.join(f'{s.name} ({len(s.labels)} tiles)' for s in sets)}",
        f"- conditions: {len(conds)} ({', '.join(args.stains)} x {', '.join(args.scanners)}); "
        f"RI k = {args.ri_k}",
        f"- wall time: {time.perf_counter() - started:.0f} s, {torch.get_num_threads()} threads",
    ]
    text = (
        "\n".join(meta) + "\n\n" + table(rows, domains, [("kind", "kind"), ("train s", "seconds")])
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"# bench_merge ({time.strftime('%Y-%m-%d')})\n\n{text}")
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(text)
    ties = next(r for r in rows if r["encoder"].startswith("merged: TIES"))
    baseline = next(r for r in rows if r["encoder"] == label_all)
    print(f"wrote {args.out}")
    print(f"ratio={ties['domain/mean'] / baseline['domain/mean']:.4f}")


if __name__ == "__main__":
    main()
