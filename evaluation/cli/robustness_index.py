"""`robustness-index`: PathoROB's Robustness Index, APD and clustering score, croma's MaRI / CRoMa / nIPD from embeddings + a manifest, one encoder or several side by side."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from evaluation.cli.common import add_out, resolved_args
from evaluation.outputs import write_run

if TYPE_CHECKING:
    from evaluation.robustness_index.manifest import Manifest

K_CHOICES = (
    "an integer, auto (best biological kNN balanced accuracy), tcga, camelyon or tolkach_esca"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "robustness-index",
        aliases=["robustness_index"],  # the module name, as the other commands are spelt
        help="Robustness Index, MaRI, CRoMa, APD, nIPD and clustering score on a multi-centre cohort",
        description=__doc__,
    )
    p.add_argument(
        "--embeddings",
        nargs="+",
        required=True,
        metavar="[NAME=]FILE",
        help="one embedding file per encoder (.h5 features, .npy, .pt), e.g. teacher=t.h5 "
        "student=s.h5; rows follow the manifest's index column, else its row order. A folder "
        "is read as PathoROB's layout (<centre>.npz keyed slide_id-patch_id; needs patch_id)",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        required=True,
        help="CSV with biological label, centre/scanner/site and slide id columns; optional "
        "group (paired subset), index and path",
    )
    p.add_argument("--centre-column", help="confounder column name when the manifest has several")
    p.add_argument(
        "--drop-group",
        nargs="+",
        default=[],
        metavar="VALUE",
        help="leave out rows whose group/subset is one of these (PathoROB drops OOD)",
    )
    p.add_argument(
        "--pathorob-dataset",
        choices=["camelyon", "tcga", "tolkach_esca"],
        help="PathoROB's defaults for one of its cohorts: its k (camelyon 11, tcga 61, "
        "tolkach_esca 46) unless --k is given, OOD rows left out of RI/MaRI/CRoMa/clustering "
        "(--drop-group OOD) and used as the APD's out-of-domain test set, its patches per "
        "slide (300 / 30 / 100) and its class and centre order; tolkach_esca also needs "
        "--apd-case-splits",
    )
    p.add_argument(
        "--k", help=f"RI neighbours: {K_CHOICES} (default auto, or the --pathorob-dataset k)"
    )
    p.add_argument("--m", type=int, default=5, help="CRoMa typed neighbours per side (default 5)")
    p.add_argument("--tau", type=float, help="MaRI temperature (default: median typed distance)")
    p.add_argument(
        "--paired",
        action="store_true",
        help="PathoROB's paired 2x2 design: neighbours only within the manifest's group column",
    )
    p.add_argument("--curve-k", type=int, default=100, help="RI(k) curve up to this k")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--apd-iterations",
        type=int,
        default=20,
        help="APD/nIPD probe-sweep replicates (PathoROB: 20; 0 skips the sweep)",
    )
    p.add_argument("--apd-seed", type=int, default=1000, help="seed of the sweep (PathoROB: 1000)")
    p.add_argument(
        "--apd-rows-per-slide",
        type=int,
        help="tiles kept per slide in the sweep (default: the fewest any slide has)",
    )
    p.add_argument(
        "--apd-centres",
        nargs=2,
        metavar="CENTRE",
        help="run the sweep on these two centres only (its design needs 2 centres, or 4x4)",
    )
    p.add_argument(
        "--apd-ood-group",
        metavar="VALUE",
        help="rows whose group/subset is VALUE are the APD's out-of-domain test set: scored, "
        "never trained on (PathoROB's metadata: OOD, the default with --pathorob-dataset)",
    )
    p.add_argument(
        "--apd-ood-centres",
        nargs="+",
        default=[],
        metavar="CENTRE",
        help="rows of these centres are the APD's out-of-domain test set (never trained on)",
    )
    p.add_argument(
        "--apd-case-splits",
        type=Path,
        help="PathoROB's case-level train/test splits (its pathorob/resources/"
        "tolkach_splits.json): test cases are held out of every class of their centre",
    )
    p.add_argument(
        "--clustering-trials",
        type=int,
        default=50,
        help="k-means runs per 2x2 combination for the clustering score (PathoROB: 50; 0 skips)",
    )
    p.add_argument(
        "--clustering-k", type=int, help="clusters (default: best silhouette over 2..30)"
    )
    p.add_argument("--dtype", choices=["float32", "float16", "float64"], default="float32")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_out(p)
    p.set_defaults(func=run)


def parse_k(value: str | None) -> int | None:
    """--k as an integer, None for auto, or PathoROB's default of a named dataset."""
    from evaluation.robustness_index import PATHOROB_DEFAULT_K

    if value is None or value == "auto":
        return None
    if value in PATHOROB_DEFAULT_K:
        return PATHOROB_DEFAULT_K[value]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--k {value!r}: use {K_CHOICES}") from None


def parse_embeddings(specs: list[str]) -> dict[str, Path]:
    """``NAME=FILE`` (or ``FILE``, named by its stem) in the given order; names must differ."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        name, file = (name, file) if sep else (Path(spec).stem, spec)
        if name in out:
            raise ValueError(f"--embeddings: the name {name!r} is given twice; use NAME=FILE")
        out[name] = Path(file)
    return out


def load_embeddings(file: Path, manifest: "Manifest", keep: np.ndarray) -> np.ndarray:
    """One encoder's kept rows in manifest order: a file (index column or row order) or a
    PathoROB folder (only the kept rows are read: dropped ones may have no features)."""
    from evaluation.embeddings_io import load_array
    from evaluation.robustness_index.manifest import ManifestError, align
    from evaluation.robustness_index.pathorob_layout import read_pathorob_features

    if file.is_dir():
        if manifest.patch is None:
            raise ManifestError(
                f"{file} is a PathoROB features folder: the manifest needs patch_id"
            )
        return read_pathorob_features(
            file, manifest.slide[keep], manifest.patch[keep], manifest.centre[keep]
        )
    return align(load_array(file), manifest, name=str(file))[keep]


def summary_row(name: str, r: dict) -> dict[str, object]:
    """One encoder's headline numbers for table.csv."""
    ri, mari, croma = r["ri"], r["mari"], r["croma"]
    probe, clus = r.get("probe", {}), r.get("clustering", {})
    named = [
        (None, ri.get("note")),
        (None, mari.get("note")),
        (None, croma.get("note")),
        ("APD/nIPD", probe.get("note")),
        ("APD out-of-domain", probe.get("ood_note") if probe.get("n_ood") else None),
        ("clustering", clus.get("note")),
    ]
    notes = "; ".join(f"{k}: {x}" if k else x for k, x in dict.fromkeys(named) if x)
    return {
        "encoder": name,
        "k": ri.get("k"),
        "ri": ri["ri"],
        "ri_std": ri["ri_std"],
        "balanced_accuracy": ri.get("balanced_accuracy"),
        "mari": mari["mari"],
        "tau": mari.get("tau"),
        "croma": croma["croma"],
        "croma_ltm10": croma.get("ltm"),
        "croma_f0": croma.get("f0"),
        "croma_support": croma.get("support"),
        "ri_support": ri.get("support"),
        "apd": probe.get("apd", float("nan")),
        "apd_ood": probe.get("apd_ood", float("nan")),
        "nipd": probe.get("nipd", float("nan")),
        "clustering_score": clus.get("clustering_score", float("nan")),
        "clustering_score_std": clus.get("clustering_score_std", float("nan")),
        "clustering_k": clus.get("k"),
        "note": notes,
    }


def apply_pathorob_dataset(args: argparse.Namespace) -> dict:
    """Fill PathoROB's defaults for --pathorob-dataset into `args`; returns the class and
    centre order its APD codes follow (empty without a dataset)."""
    from evaluation.robustness_index.probe_schedule import (
        PATHOROB_APD_CENTRES,
        PATHOROB_APD_CLASSES,
        PATHOROB_APD_DESIGN,
    )

    name = args.pathorob_dataset
    if name is None:
        return {}
    if args.k is None:
        args.k = name
    if args.apd_ood_group is None:
        args.apd_ood_group = "OOD"
    if not args.drop_group:
        args.drop_group = [args.apd_ood_group]
    if args.apd_rows_per_slide is None:
        args.apd_rows_per_slide = PATHOROB_APD_DESIGN[name][2]
    if name == "tolkach_esca" and args.apd_case_splits is None and args.apd_iterations > 0:
        raise ValueError(
            "--pathorob-dataset tolkach_esca: PathoROB's APD draws case-level splits; pass "
            "--apd-case-splits with pathorob/resources/tolkach_splits.json from its "
            "repository (or --apd-iterations 0)"
        )
    return {
        "class_order": PATHOROB_APD_CLASSES[name],
        "centre_order": PATHOROB_APD_CENTRES[name][0],
    }


def ood_rows(manifest: "Manifest", args: argparse.Namespace) -> np.ndarray:
    """Rows of the APD's out-of-domain test set: --apd-ood-group rows, --apd-ood-centres rows.

    Raises:
        ManifestError: an --apd-ood-centres centre has no row.
    """
    from evaluation.robustness_index.manifest import ManifestError

    ood = np.zeros(len(manifest), dtype=bool)
    if args.apd_ood_group is not None:
        if manifest.group is None:
            raise ManifestError("--apd-ood-group needs a group column (group or subset)")
        ood |= manifest.group.astype(str) == args.apd_ood_group
    if args.apd_ood_centres:
        centre = manifest.centre.astype(str)
        missing = sorted(set(args.apd_ood_centres) - set(centre))
        if missing:
            raise ManifestError(f"--apd-ood-centres: no row has centre {', '.join(missing)}")
        ood |= np.isin(centre, args.apd_ood_centres)
    return ood


def probe_for(
    x: np.ndarray,
    manifest: "Manifest",
    rows: np.ndarray,
    x_ood: np.ndarray,
    ood: np.ndarray,
    args,
    order: dict,
) -> dict:
    """APD (in- and out-of-domain) / nIPD of one encoder: trained on `rows` (on the
    --apd-centres when given), the `ood` rows scored as the out-of-domain test set."""
    import json

    from evaluation.robustness_index.downstream import probe_robustness
    from evaluation.robustness_index.manifest import ManifestError

    centre = manifest.centre[rows].astype(str)
    use = np.ones(int(rows.sum()), dtype=bool)
    if args.apd_centres:
        missing = sorted(set(args.apd_centres) - set(centre))
        if missing:
            raise ManifestError(f"--apd-centres: no kept row has centre {', '.join(missing)}")
        use = np.isin(centre, args.apd_centres)
    splits = None
    if args.apd_case_splits is not None:
        if not args.apd_case_splits.is_file():
            raise ManifestError(f"--apd-case-splits {args.apd_case_splits}: no such file")
        splits = json.loads(args.apd_case_splits.read_text())
    return probe_robustness(
        x[use],
        manifest.biology[rows][use],
        centre[use],
        manifest.slide[rows][use].astype(str),
        iterations=args.apd_iterations,
        seed=args.apd_seed,
        rows_per_slide=args.apd_rows_per_slide,
        ood_embeddings=x_ood if len(x_ood) else None,
        ood_biology=manifest.biology[ood],
        case_splits=splits,
        **order,
    )


def run(args: argparse.Namespace) -> None:
    """Run the subcommand."""
    from evaluation.outputs import staged_folder
    from evaluation.robustness_index import robustness_metrics
    from evaluation.robustness_index.clustering import clustering_score
    from evaluation.robustness_index.manifest import ManifestError, read_manifest

    order = apply_pathorob_dataset(args)
    k = parse_k(args.k)
    files = parse_embeddings(args.embeddings)
    manifest = read_manifest(args.manifest, args.centre_column)
    if args.paired and manifest.group is None:
        raise ManifestError(f"{args.manifest}: --paired needs a group column (group or subset)")
    keep = np.ones(len(manifest), dtype=bool)
    if args.drop_group:
        if manifest.group is None:
            raise ManifestError(
                f"{args.manifest}: --drop-group needs a group column (group or subset)"
            )
        keep = ~np.isin(manifest.group, args.drop_group)
    ood = ood_rows(manifest, args)
    read = keep | ood
    encoders, per_sample = {}, {}
    for name, file in files.items():
        x_read = load_embeddings(file, manifest, read)
        x, x_ood = x_read[keep[read]], x_read[ood[read]]
        r = robustness_metrics(
            x,
            manifest.biology[keep],
            manifest.centre[keep],
            manifest.slide[keep],
            k=k,
            m=args.m,
            group=manifest.group[keep] if args.paired else None,
            tau=args.tau,
            n_bootstrap=args.n_bootstrap,
            seed=args.seed,
            curve_k=args.curve_k,
            dtype=getattr(torch, args.dtype),
            device=args.device,
        )
        r["probe"] = probe_for(x[~ood[keep]], manifest, keep & ~ood, x_ood, ood, args, order)
        r["clustering"] = clustering_score(
            x,
            manifest.biology[keep],
            manifest.centre[keep],
            k=args.clustering_k,
            n_trials=args.clustering_trials,
        )
        per_sample[name] = r["croma"].pop("per_sample", np.full(int(keep.sum()), np.nan))
        r["mari"].pop("per_query", None)
        r["ri"].pop("per_query", None)
        encoders[name] = r
    rows = [summary_row(n, r) for n, r in encoders.items()]
    payload = {
        "design": "paired_2x2" if args.paired else "all",
        "n_samples": int(keep.sum()),
        "dropped_rows": int((~keep).sum()),
        "apd_ood_rows": int(ood.sum()),
        "manifest_columns": manifest.columns,
        "encoders": encoders,
    }
    if len(encoders) >= 2:
        first, *rest = encoders
        payload["differences"] = {
            f"{other} - {first}": {
                key: rows[i + 1][key] - rows[0][key]
                for key in (
                    "ri",
                    "mari",
                    "croma",
                    "croma_ltm10",
                    "croma_f0",
                    "apd",
                    "apd_ood",
                    "nipd",
                    "clustering_score",
                )
            }
            for i, other in enumerate(rest)
        }
    with staged_folder(args.out) as tmp:
        np.savez_compressed(tmp / "croma_values.npz", **per_sample)
        write_run(tmp, "robustness-index", resolved_args(args), payload, rows)
    for row in rows:
        print(
            f"{row['encoder']}: RI={row['ri']:.3f}±{row['ri_std']:.3f} (k={row['k']}) "
            f"MaRI={row['mari']:.3f} CRoMa={row['croma']:.3f} LTM10={row['croma_ltm10']:.3f} "
            f"F(0)={row['croma_f0']:.3f} APD={row['apd']:.4f} nIPD={row['nipd']:.3f} "
            f"CS={row['clustering_score']:.3f} APD-OOD={row['apd_ood']:.4f}"
            + (f"  [{row['note']}]" if row["note"] else "")
        )
