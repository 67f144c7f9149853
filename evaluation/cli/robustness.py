"""`robustness`: simulated PLISM (stain presets x scanner profiles) for teacher and student, side by side."""

import argparse
from pathlib import Path

import numpy as np
import torch

from evaluation.cli.common import add_embedding_opts, add_model, add_out, add_top_k, resolved_args
from evaluation.cli.plism import result_payload
from evaluation.outputs import write_run
from slides.atomic import atomic_path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "robustness", help="PLISM-like robustness on simulated conditions", description=__doc__
    )
    p.add_argument(
        "--slides", type=Path, nargs="+", help="slides to tile (default: the shipped sample slide)"
    )
    add_model(p, "teacher", required=True)
    add_model(p, "student", required=True)
    p.add_argument("--stains", type=int, default=6, help="number of stain presets (K)")
    p.add_argument("--scanners", type=int, default=4, help="number of scanner profiles (M)")
    p.add_argument("--max-tiles", type=int, default=64, help="tissue tiles in total")
    p.add_argument("--mpp", type=float, default=0.5)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--min-tissue", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    add_embedding_opts(p)
    add_top_k(p)
    add_out(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run the subcommand."""
    from evaluation.encoder import load_encoder
    from evaluation.outputs import write_json
    from evaluation.robustness import (
        embed_conditions,
        projection_sample,
        robustness_results,
        sample_tiles,
    )
    from slides import SAMPLE_SLIDE
    from vitkd.data.augment import ConditionSimulator

    slides = args.slides or [SAMPLE_SLIDE]
    tiles = sample_tiles(slides, args.mpp, args.size, args.max_tiles, args.min_tissue, args.seed)
    models = {
        "teacher": load_encoder(args.teacher_model, args.teacher_weights),
        "student": load_encoder(args.student_model, args.student_weights),
    }
    simulator = ConditionSimulator(stains=args.stains, scanners=args.scanners)
    feats, conds = embed_conditions(
        tiles, simulator, models, args.batch_size, args.tokens, args.device
    )
    results = robustness_results(feats, conds, args.top_k, getattr(torch, args.dtype))
    rows = [{"model": m, **row} for m, r in results.items() for row in r.rows]
    payload = {
        "models": {m: result_payload(r) for m, r in results.items()},
        "conditions": [{"name": n, "stain": s, "scanner": sc} for n, (s, sc) in conds.items()],
        "n_tiles": len(tiles.images),
        "slides": sorted(set(tiles.slides)),
    }
    with atomic_path(args.out / "projection.npz") as tmp:
        np.savez_compressed(tmp, **projection_sample(feats, conds, seed=args.seed))
    write_json(args.out / "tiles.json", {"slides": tiles.slides, "coords": tiles.coords.tolist()})
    write_run(args.out, "robustness", resolved_args(args), payload, rows, table="pairs.csv")
    for m, r in results.items():
        print(f"{m}: leaderboard={r.leaderboard}")
