"""`probe`: EVA linear probe, logistic regression and cosine kNN on frozen embeddings."""

import argparse
from pathlib import Path

from evaluation.cli.common import add_embedding_opts, add_model, add_out, resolved_args
from evaluation.outputs import write_run
from evaluation.probes import (
    EVA_LAYOUTS,
    MONITORS,
    PROBES,
    LinearProbeConfig,
    ProbeData,
    ProbeInputError,
    describe_monitor,
    embed_samples,
    headline,
    load_labelled_embeddings,
    run_probes,
    tile_folder_samples,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "probe", help="EVA-style linear / logistic / kNN probes", description=__doc__
    )
    src = p.add_argument_group("inputs (one of)")
    src.add_argument(
        "--embeddings", type=Path, nargs="+", help=".h5/.npy/.pt files or folders, with --labels"
    )
    src.add_argument(
        "--labels", type=Path, help="CSV: label, split and slide,x,y | path[,index] | index"
    )
    src.add_argument(
        "--tile-folder", type=Path, help="split/class/image folder, embedded with --model"
    )
    src.add_argument(
        "--dataset",
        choices=sorted(EVA_LAYOUTS),
        help="eva dataset layout under --root, embedded with --model",
    )
    src.add_argument("--root", type=Path, help="root folder of --dataset")
    add_model(p)
    add_embedding_opts(p)
    p.add_argument("--probes", nargs="+", choices=PROBES, default=list(PROBES))
    p.add_argument("--max-steps", type=int, default=12_500, help="linear probe steps (eva: 12,500)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument(
        "--weight-decay", type=float, default=0.01, help="AdamW weight decay (eva: torch's 0.01)"
    )
    p.add_argument(
        "--monitor",
        choices=MONITORS,
        default="holdout",
        help="early stopping split: holdout = 'val' if given besides the scored split, else "
        "--val-fraction of train (grouped by a patient/slide column); eva = val, else test",
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of train held out (holdout)"
    )
    p.add_argument(
        "--min-steps",
        type=int,
        default=1000,
        help="warn when early stopping fires before this many steps",
    )
    p.add_argument("--batch", type=int, default=256, help="linear probe batch size")
    p.add_argument(
        "--patience",
        type=int,
        default=7,
        help="validation checks without improvement before stopping",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--knn-k", type=int, default=20)
    p.add_argument(
        "--dims",
        type=int,
        nargs="+",
        help="also probe the first N dimensions of each embedding (nested / Matryoshka sizes)",
    )
    add_out(p)
    p.set_defaults(func=run)


def load_data(args: argparse.Namespace) -> ProbeData:
    """ProbeData from whichever input the arguments name."""
    if args.labels is not None:
        return load_labelled_embeddings(args.embeddings or [], args.labels)
    if args.tile_folder is None and args.dataset is None:
        raise ProbeInputError(
            "give --labels (with --embeddings), --tile-folder or --dataset/--root"
        )
    if args.model is None:
        raise ProbeInputError("--tile-folder/--dataset need --model to embed the images")
    if args.dataset is not None:
        if args.root is None:
            raise ProbeInputError(f"--dataset {args.dataset} needs --root")
        samples, classes = EVA_LAYOUTS[args.dataset](args.root)
    else:
        samples, classes = tile_folder_samples(args.tile_folder), None
    from evaluation.encoder import load_encoder

    backbone = load_encoder(args.model, args.weights)
    return embed_samples(samples, backbone, classes, args.batch_size, args.tokens, args.device)


def run(args: argparse.Namespace) -> None:
    """Run the subcommand."""
    data = load_data(args)
    cfg = LinearProbeConfig(
        lr=args.lr,
        weight_decay=args.weight_decay,
        batch_size=args.batch,
        max_steps=args.max_steps,
        patience=args.patience,
        seeds=tuple(args.seeds),
        monitor=args.monitor,
        val_fraction=args.val_fraction,
        min_steps=args.min_steps,
    )
    dims = sorted(set(args.dims or []), reverse=True)
    full = int(data.x_train.shape[1])
    results = run_probes(data, args.probes, cfg, knn_k=args.knn_k)
    per_dim = {full: results}
    for dim in dims:
        if dim != full:
            per_dim[dim] = run_probes(data.prefix(dim), args.probes, cfg, knn_k=args.knn_k)
    rows = [
        {
            "probe": name,
            "dim": dim,
            "balanced_accuracy": headline(r),
            "balanced_accuracy_std": r.get("balanced_accuracy_std", 0.0),
            "eval_split": r["eval_split"],
            "monitor_split": r.get("monitor_split", ""),
        }
        for dim, res in per_dim.items()
        for name, r in res.items()
    ]
    sizes = {
        "n_train": len(data.y_train),
        "n_val": len(data.y_val),
        "n_test": len(data.y_test),
        "classes": data.classes,
        "dim": int(data.x_train.shape[1]),
    }
    write_run(
        args.out,
        "probe",
        resolved_args(args),
        {
            "probes": results,
            "data": sizes,
            **({"probes_by_dim": {str(d): r for d, r in per_dim.items()}} if dims else {}),
        },
        rows,
        table="probes.csv",
    )
    for r in rows:
        at = f" @{r['dim']}" if dims else ""
        line = (
            f"{r['probe']}{at}: balanced_accuracy={r['balanced_accuracy']:.4f} ({r['eval_split']})"
        )
        monitor = per_dim[r["dim"]][r["probe"]].get("monitor")
        if monitor is not None:
            line += f"; {describe_monitor(monitor)}"
        print(line)
