"""Robustness on real multi-centre tiles: labelled folders from different sources as "centres".

Labelled tile folders from different sources (`--centres NAME=DIR`, e.g. kather16 and crc7k:
two labs, two scanners, two pipelines) share some tissue classes (`--class-map`). This script
builds, for each class map, the cohort a user would hand to `python -m evaluation
robustness-index`:

1. every tile is cut into `--grid` x `--grid` sub-tiles (rows); the source tile is the
   "slide", so neighbours from the same tile are dropped by RI / MaRI / CRoMa and a tile is
   never both trained and tested on by the APD probes;
2. tiles of `--ood NAME=DIR` folders (classes mapped the same way) are rows of subset ``OOD``:
   centres the APD probes never train on, scored as PathoROB's out-of-domain test set, and
   left out of the other metrics (``--drop-group OOD``);
3. embeds every row with the demo teacher (`--teacher`), a random-init student of the demo's
   student shape (configs/demo.yaml) and a colour histogram (`evaluation.baselines`), writes
   ``manifest.csv`` and one ``.npy`` per encoder, and runs the robustness-index command on
   them (the CLI's own code path): RI, MaRI, CRoMa (median, LTM10, F(0)), APD in- and
   out-of-domain, nIPD and the clustering score, encoders side by side;
4. writes a Markdown table per class map with every cell (an undefined metric is NaN with the
   reason the command gives).

Nothing is downloaded and nothing from the data folders is copied into the repository: the
manifests and embeddings go to `--work`.

    python scripts/bench_centres.py \\
        --centres kather16=../shared/data/labeled/kather16-samples \\
                  crc7k=../shared/data/labeled/crc7k-mini \\
        --ood tcga=../shared/data/labeled/tcga-luad-lusc
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# The six classes kather16 and crc7k share, and the tumour tiles of other sets, by one name.
FINE = (
    "01_TUMOR=TUM,TUM=TUM,02_STROMA=STR,STR=STR,04_LYMPHO=LYM,LYM=LYM,05_DEBRIS=DEB,DEB=DEB,"
    "06_MUCOSA=NORM,NORM=NORM,07_ADIPOSE=ADI,ADI=ADI,LUAD=TUM,LUSC=TUM"
)
# Three coarse groups of the same tiles: enough source tiles per centre and class (6 in
# kather16) for PathoROB's two-centre APD design, which needs at least 4.
COARSE = (
    "01_TUMOR=epithelium,TUM=epithelium,06_MUCOSA=epithelium,NORM=epithelium,"
    "LUAD=epithelium,LUSC=epithelium,02_STROMA=stroma_fat,STR=stroma_fat,07_ADIPOSE=stroma_fat,"
    "ADI=stroma_fat,04_LYMPHO=immune_debris,LYM=immune_debris,05_DEBRIS=immune_debris,"
    "DEB=immune_debris"
)
ENCODERS = ("teacher", "random student", "colour histogram")


@dataclass
class Cohort:
    """Rows of one class map: sub-tile images and their manifest columns."""

    images: list[np.ndarray] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, tile: np.ndarray, grid: int, **columns: str) -> None:
        """Append the `grid` x `grid` sub-tiles of one source tile."""
        h, w = tile.shape[0] // grid, tile.shape[1] // grid
        for r in range(grid):
            for c in range(grid):
                self.images.append(
                    np.ascontiguousarray(tile[r * h : (r + 1) * h, c * w : (c + 1) * w])
                )
                self.rows.append({**columns, "index": str(len(self.rows))})


def parse_map(spec: str) -> tuple[str, dict[str, str]]:
    """``NAME:OLD=NEW,...`` (or ``fine`` / ``coarse``) as (name, {folder class: shared class})."""
    presets = {"fine": FINE, "coarse": COARSE}
    name, sep, pairs = spec.partition(":")
    if not sep:
        if spec not in presets:
            raise SystemExit(f"--class-map {spec!r}: write NAME:OLD=NEW,... or fine / coarse")
        pairs = presets[spec]
    mapping = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    return name, mapping


def parse_folders(items: list[str], flag: str) -> list[tuple[str, Path]]:
    """``NAME=DIR`` items as (name, folder)."""
    out = []
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not Path(folder).is_dir():
            raise SystemExit(f"{flag} {item!r}: write NAME=DIR with an existing folder")
        out.append((name, Path(folder)))
    return out


def build_cohort(
    centres: list[tuple[str, Path]],
    ood: list[tuple[str, Path]],
    mapping: dict[str, str],
    grid: int,
    ood_per_class: int,
) -> Cohort:
    """Read the folders and keep the tiles whose class `mapping` names.

    In-domain tiles get subset ``ID``; each `ood` folder gives at most `ood_per_class` tiles
    per (split, class) with subset ``OOD``. The slide id is the source tile's file.
    """
    from evaluation.probes.sources import labeled_folder_samples, read_sample

    cohort = Cohort()
    for subset, folders in (("ID", centres), ("OOD", ood)):
        for centre, folder in folders:
            taken: dict[tuple[str, str], int] = {}
            for sample in labeled_folder_samples(folder):
                label = mapping.get(sample.label)
                key = (sample.split, sample.label)
                if label is None or (subset == "OOD" and taken.get(key, 0) >= ood_per_class):
                    continue
                taken[key] = taken.get(key, 0) + 1
                slide = f"{centre}/{sample.path.relative_to(folder)}"
                cohort.add(
                    read_sample(sample),
                    grid,
                    label=label,
                    centre=centre,
                    slide_id=slide,
                    subset=subset,
                    path=str(sample.path),
                )
    if not cohort.rows:
        raise SystemExit("no tile has a class the class map names")
    return cohort


def write_manifest(cohort: Cohort, path: Path) -> None:
    """The manifest CSV the robustness-index command reads (index = row of the .npy files)."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(cohort.rows[0]))
        w.writeheader()
        w.writerows(cohort.rows)


def build_encoders(teacher: str, seed: int) -> dict:
    """The demo teacher and a random-init student of configs/demo.yaml's student shape."""
    import torch
    import yaml

    from vitkd.config_files import config_path
    from vitkd.models import build_backbone, build_teacher
    from vitkd.models.builtin import resolve_weights

    demo = yaml.safe_load(config_path("demo.yaml").read_text())["model"]
    t, s = demo["teacher"], demo["student"]
    out = {
        "teacher": build_teacher(t["name"], resolve_weights(teacher, "--teacher"), **t["kwargs"])
    }
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        out["random student"] = build_backbone(s["name"], **s["kwargs"]).eval()
    return out


def embed(cohort: Cohort, models: dict, names: list[str]) -> dict[str, np.ndarray]:
    """(rows, dim) float32 embeddings per encoder, in manifest order."""
    from evaluation.baselines import colour_histogram
    from evaluation.encoder import embed_images

    out = {}
    for name in names:
        if name == "colour histogram":
            out[name] = colour_histogram(cohort.images)
        else:
            out[name] = embed_images(models[name], cohort.images, 64, progress=False)
    return out


def run_cli(manifest: Path, files: dict[str, Path], out: Path, args: argparse.Namespace) -> dict:
    """`python -m evaluation robustness-index` in this process; returns its results.json."""
    from evaluation.cli import main

    argv = ["robustness-index", "--embeddings"]
    argv += [f"{name.replace(' ', '_')}={path}" for name, path in files.items()]
    argv += ["--manifest", str(manifest), "--drop-group", "OOD", "--apd-ood-group", "OOD"]
    argv += ["--k", args.k, "--n-bootstrap", str(args.n_bootstrap), "--device", "cpu"]
    argv += ["--apd-iterations", str(args.apd_iterations), "--clustering-trials"]
    argv += [str(args.clustering_trials), "--out", str(out)]
    main(argv)
    return json.loads((out / "results.json").read_text())


def cell(value: object, digits: int = 3) -> str:
    """A table cell: the number, or NaN."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "NaN"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(results: dict) -> str:
    """One Markdown row per encoder, every metric the command reports."""
    head = [
        "encoder",
        "k",
        "RI ± std",
        "MaRI",
        "CRoMa",
        "LTM10",
        "F(0)",
        "APD in-domain",
        "APD out-of-domain",
        "nIPD",
        "clustering ± std",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    notes = []
    for name, r in results["encoders"].items():
        ri, mari, croma, probe, clus = (
            r[key] for key in ("ri", "mari", "croma", "probe", "clustering")
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    name.replace("_", " "),
                    cell(ri["k"]),
                    f"{cell(ri['ri'])} ± {cell(ri['ri_std'])}",
                    cell(mari["mari"]),
                    cell(croma["croma"]),
                    cell(croma["ltm"]),
                    cell(croma["f0"]),
                    cell(probe["apd"], 4),
                    cell(probe["apd_ood"], 4),
                    cell(probe["nipd"]),
                    f"{cell(clus['clustering_score'])} ± {cell(clus['clustering_score_std'])}",
                ]
            )
            + " |"
        )
        why = [
            x
            for x in (ri.get("note"), probe.get("note"), probe.get("ood_note"), clus.get("note"))
            if x
        ]
        if why:
            notes.append(f"- {name.replace('_', ' ')}: " + "; ".join(dict.fromkeys(why)))
    return "\n".join(lines + (["", *notes] if notes else []))


def summary(cohort: Cohort) -> str:
    """Rows, source tiles and classes per centre and subset."""
    counts: dict[tuple[str, str], set] = {}
    tiles: dict[tuple[str, str], set] = {}
    for row in cohort.rows:
        key = (row["subset"], row["centre"])
        counts.setdefault(key, set()).add(row["label"])
        tiles.setdefault(key, set()).add(row["slide_id"])
    return "; ".join(
        f"{subset} {centre}: {len(tiles[(subset, centre)])} tiles, classes "
        f"{', '.join(sorted(classes))}"
        for (subset, centre), classes in counts.items()
    )


def main(argv: list[str] | None = None) -> None:
    """Build the cohorts, embed, run the robustness-index command, write the tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--centres",
        nargs="+",
        required=True,
        metavar="NAME=DIR",
        help="training centres (labelled folders)",
    )
    p.add_argument(
        "--ood",
        nargs="*",
        default=[],
        metavar="NAME=DIR",
        help="test-only centres for the out-of-domain APD",
    )
    p.add_argument(
        "--class-map",
        nargs="+",
        default=["fine", "coarse"],
        metavar="NAME:OLD=NEW,...",
        help="one cohort per map: folder class -> shared class, unmapped classes dropped "
        "(presets: fine = the 6 shared classes, coarse = 3 groups of them)",
    )
    p.add_argument(
        "--grid",
        type=int,
        default=2,
        help="sub-tiles per side of each tile (rows per slide = grid^2)",
    )
    p.add_argument(
        "--ood-per-class", type=int, default=10, help="tiles per split and class of an --ood folder"
    )
    p.add_argument("--teacher", default="builtin:demo-teacher")
    p.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=ENCODERS)
    p.add_argument("--k", default="auto", help="RI neighbours (the command's --k)")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--apd-iterations", type=int, default=20)
    p.add_argument("--clustering-trials", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="seed of the random student")
    p.add_argument(
        "--work", type=Path, help="manifests, embeddings, command outputs (default: a temp dir)"
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu_centres.md")
    args = p.parse_args(argv)

    import torch

    started = time.perf_counter()
    centres, ood = parse_folders(args.centres, "--centres"), parse_folders(args.ood, "--ood")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_centres_"))
    models = (
        build_encoders(args.teacher, args.seed) if set(args.encoders) - {"colour histogram"} else {}
    )
    sections = []
    for spec in args.class_map:
        name, mapping = parse_map(spec)
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        cohort = build_cohort(centres, ood, mapping, args.grid, args.ood_per_class)
        write_manifest(cohort, folder / "manifest.csv")
        files = {}
        for enc, x in embed(cohort, models, args.encoders).items():
            files[enc] = folder / f"{enc.replace(' ', '_')}.npy"
            np.save(files[enc], x)
        print(f"{name}: {len(cohort.rows)} rows; {summary(cohort)}", flush=True)
        results = run_cli(folder / "manifest.csv", files, folder / "robustness_index", args)
        sections.append(f"## Class map `{name}`\n\n{summary(cohort)}.\n\n{table(results)}\n")
    meta = (
        f"- centres: {', '.join(f'{n}={d}' for n, d in centres)}; out-of-domain: "
        f"{', '.join(f'{n}={d}' for n, d in ood) or 'none'}\n"
        f"- encoders: {', '.join(args.encoders)} (teacher {args.teacher}; random student seed "
        f"{args.seed}, configs/demo.yaml's student shape; colour histogram 16 bins x RGB)\n"
        f"- rows: {args.grid}x{args.grid} sub-tiles per source tile (the slide); k {args.k}, "
        f"{args.n_bootstrap} bootstrap draws, {args.apd_iterations} APD iterations, "
        f"{args.clustering_trials} clustering trials\n"
        f"- wall time {time.perf_counter() - started:.0f} s, {torch.get_num_threads()} threads; "
        f"command outputs in {work}\n"
    )
    text = f"# bench_centres ({time.strftime('%Y-%m-%d')})\n\n{meta}\n" + "\n".join(sections)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
