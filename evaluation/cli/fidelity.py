"""`fidelity`: teacher-student agreement on held-out tiles (CKA, ridge R^2, kNN agreement, probe retention)."""

import argparse
from pathlib import Path

from evaluation.cli.common import add_embedding_opts, add_model, add_out, resolved_args
from evaluation.fidelity import fidelity_metrics, load_paired, probe_retention
from evaluation.outputs import write_run
from evaluation.probes import LinearProbeConfig, load_labelled_embeddings


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "fidelity", help="teacher-student fidelity on held-out tiles", description=__doc__
    )
    p.add_argument("--student", type=Path, nargs="+", help="student embeddings (.h5/.npy/.pt)")
    p.add_argument("--teacher", type=Path, nargs="+", help="teacher embeddings, same file names")
    g = p.add_argument_group("or embed held-out tiles of --slides with both models")
    g.add_argument("--slides", type=Path, nargs="+", help="held-out slides (never trained on)")
    add_model(g, "teacher")
    add_model(g, "student")
    g.add_argument("--max-tiles", type=int, default=256)
    g.add_argument("--mpp", type=float, default=0.5)
    g.add_argument("--size", type=int, default=224)
    add_embedding_opts(g)
    p.add_argument("--k", type=int, default=10, help="neighbourhood size for kNN agreement")
    p.add_argument("--alpha", type=float, default=1.0, help="ridge penalty")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", type=Path, help="labels CSV (see `probe`) for probe retention")
    p.add_argument(
        "--probes", nargs="+", default=["logistic", "knn"], choices=["linear", "logistic", "knn"]
    )
    p.add_argument("--max-steps", type=int, default=12_500, help="linear probe steps")
    add_out(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run the subcommand."""
    if args.slides:
        if not (args.teacher_model and args.student_model):
            raise ValueError("--slides needs --teacher-model and --student-model")
        if args.labels is not None:
            raise ValueError("--labels (probe retention) needs --student/--teacher embedding files")
        from evaluation.encoder import embed_images, load_encoder
        from evaluation.robustness import sample_tiles

        tiles = sample_tiles(args.slides, args.mpp, args.size, args.max_tiles, seed=args.seed)
        student, teacher = (
            embed_images(
                load_encoder(m, w), list(tiles.images), args.batch_size, args.tokens, args.device
            )
            for m, w in (
                (args.student_model, args.student_weights),
                (args.teacher_model, args.teacher_weights),
            )
        )
    elif args.student and args.teacher:
        student, teacher = load_paired(args.student, args.teacher)
    else:
        raise ValueError(
            "give --student and --teacher embeddings, or --slides with --teacher-model/--student-model"
        )
    metrics = fidelity_metrics(student, teacher, args.k, args.alpha, args.seed)
    rows = [{"metric": k, "value": v} for k, v in metrics.items()]
    payload: dict[str, object] = {"fidelity": metrics}
    if args.labels is not None:
        ret = probe_retention(
            load_labelled_embeddings(args.student, args.labels),
            load_labelled_embeddings(args.teacher, args.labels),
            args.probes,
            LinearProbeConfig(max_steps=args.max_steps),
        )
        payload["probe_retention"] = ret
        rows += [
            {
                "metric": f"{name}_retention",
                "value": r["retention"],
                "student": r["student"],
                "teacher": r["teacher"],
            }
            for name, r in ret.items()
        ]
    write_run(args.out, "fidelity", resolved_args(args), payload, rows, table="fidelity.csv")
    print(" ".join(f"{r['metric']}={r['value']:.4f}" for r in rows) + f" -> {args.out}")
