"""`hest`: HEST-style gene-expression regression (PCA 256 + ridge, Pearson r over patient folds)."""

import argparse
from pathlib import Path

from evaluation.cli.common import add_out, resolved_args
from evaluation.hest import HestInputError, load_bench_task, load_table, read_folds, run_hest
from evaluation.hest.regression import CONSTANT_GENE_POLICIES, HEST_SEED
from evaluation.outputs import write_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "hest", help="HEST-style ridge regression of gene expression", description=__doc__
    )
    g = p.add_argument_group("HEST-bench layout")
    g.add_argument(
        "--bench-task", type=Path, help="task folder with splits/, var_50genes.json, adata/"
    )
    g.add_argument(
        "--embed-dir", type=Path, help="<sample_id>.h5 embeddings (embeddings|features + barcodes)"
    )
    g.add_argument("--gene-list", default="var_50genes.json")
    t = p.add_argument_group("any embeddings + targets table")
    t.add_argument("--embeddings", type=Path, help=".h5/.npy/.pt embeddings (N, D)")
    t.add_argument("--targets", type=Path, help="CSV: sample_id, [index], one column per target")
    t.add_argument(
        "--targets-cols",
        nargs="+",
        help="target columns (default: all but sample_id/index/barcode)",
    )
    t.add_argument(
        "--splits", type=Path, help="folder of train_k.csv/test_k.csv (sample_id), patient-level"
    )
    t.add_argument("--log1p", action="store_true", help="apply log1p to the targets (raw counts)")
    p.add_argument("--n-components", type=int, default=256)
    p.add_argument("--seed", type=int, default=HEST_SEED, help="PCA/ridge random_state (HEST: 1)")
    p.add_argument(
        "--constant-gene",
        choices=list(CONSTANT_GENE_POLICIES),
        default="nan",
        help="a gene constant in a test fold: nan makes the mean NaN (HEST), drop leaves it out",
    )
    add_out(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run the subcommand."""
    if args.bench_task is not None:
        if args.embed_dir is None:
            raise HestInputError("--bench-task needs --embed-dir")
        table, folds = load_bench_task(args.bench_task, args.embed_dir, args.gene_list)
    elif args.embeddings is not None and args.targets is not None and args.splits is not None:
        table, folds = (
            load_table(args.embeddings, args.targets, args.targets_cols, args.log1p),
            read_folds(args.splits),
        )
    else:
        raise HestInputError(
            "give --bench-task/--embed-dir, or --embeddings, --targets and --splits"
        )
    result = run_hest(table, folds, args.n_components, args.seed, constant_gene=args.constant_gene)
    rows = [
        {
            "fold": f["fold"],
            "pearson_mean": f["pearson_mean"],
            "n_train": f["n_train"],
            "n_test": f["n_test"],
            "n_components": f["n_components"],
        }
        for f in result["folds"]
    ]
    write_run(
        args.out,
        "hest",
        resolved_args(args),
        {**result, "n_targets": len(table.targets)},
        rows,
        table="folds.csv",
    )
    print(
        f"pearson_mean={result['pearson_mean']:.4f} +- {result['pearson_std']:.4f} over {len(folds)} folds "
        f"(constant genes: {args.constant_gene}) -> {args.out}"
    )
