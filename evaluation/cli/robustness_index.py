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
    p.add_argument("--k", default="auto", help=f"RI neighbours: {K_CHOICES} (default auto)")
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


def parse_k(value: str) -> int | None:
    """--k as an integer, None for auto, or PathoROB's default of a named dataset."""
    from evaluation.robustness_index import PATHOROB_DEFAULT_K

    if value == "auto":
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
        "nipd": probe.get("nipd", float("nan")),
        "clustering_score": clus.get("clustering_score", float("nan")),
        "clustering_score_std": clus.get("clustering_score_std", float("nan")),
        "clustering_k": clus.get("k"),
        "note": notes,
    }


def probe_for(x: np.ndarray, manifest: "Manifest", keep: np.ndarray, args) -> dict:
    """APD / nIPD of one encoder's kept rows, on the --apd-centres when given."""
    from evaluation.robustness_index.downstream import probe_robustness
    from evaluation.robustness_index.manifest import ManifestError

    use = np.ones(int(keep.sum()), dtype=bool)
    centre = manifest.centre[keep].astype(str)
    if args.apd_centres:
        missing = sorted(set(args.apd_centres) - set(centre))
        if missing:
            raise ManifestError(f"--apd-centres: no kept row has centre {', '.join(missing)}")
        use = np.isin(centre, args.apd_centres)
    return probe_robustness(
        x[use],
        manifest.biology[keep][use],
        centre[use],
        manifest.slide[keep][use],
        iterations=args.apd_iterations,
        seed=args.apd_seed,
        rows_per_slide=args.apd_rows_per_slide,
    )


def run(args: argparse.Namespace) -> None:
    """Run the subcommand."""
    from evaluation.outputs import staged_folder
    from evaluation.robustness_index import robustness_metrics
    from evaluation.robustness_index.clustering import clustering_score
    from evaluation.robustness_index.manifest import ManifestError, read_manifest

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
    encoders, per_sample = {}, {}
    for name, file in files.items():
        x = load_embeddings(file, manifest, keep)
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
        r["probe"] = probe_for(x, manifest, keep, args)
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
            f"CS={row['clustering_score']:.3f}" + (f"  [{row['note']}]" if row["note"] else "")
        )
