"""Does distillation transfer knowledge and robustness? Students of one teacher, side by side.

For a teacher (default: the demo teacher shipped with vitkd), unlabelled slides (default: the
shipped samples) and labelled tile folders given by the user, in one process:

1. distils one student per recipe of a small grid at equal compute (same student, steps, batch
   and seed): targets `features` vs `prototypes`, `teacher_view` light vs same, `augment`
   pathology vs dinov2;
2. embeds the labelled tiles (resized to the models' input size) with the teacher, a random
   ViT of the teacher's shape, a random-init student, each distilled student (its EMA, the
   exported model) and a colour-histogram baseline;
3. reports per encoder:
   - probes: kNN (k = 20, cosine) and logistic regression, balanced accuracy, on the first
     folder's test split (`<root>/{train,test}/<class>/*`), leave-one-out on class-only folders
     (`<root>/<class>/*`), and retention = student / teacher;
   - fidelity to the teacher on the first folder's tiles: `pc_r2` (every teacher principal
     direction counts the same), linear CKA, kNN agreement on centred features;
   - robustness: every folder's tiles rendered under simulated stain x scanner conditions
     (`vitkd.data.augment.ConditionSimulator`; strong stains by default); per folder PathoROB's
     robustness index with the condition as the confounding "centre" and each source tile as its
     own "slide": RI = sum SO / sum (SO + OS) over the k nearest neighbours (cosine); on the
     first folder also top-10 retrieval of the same tile across stain and across scanner
     (PLISM's metric). The ratio uses the RI of `--ri-set` (default: the folder with the most
     classes: with two classes from two source images, as in the LUAD/LUSC demo set, class is
     image identity and every encoder, a colour histogram included, scores RI ~0.91).
4. writes a Markdown table (and JSON) under benchmarks/results/ and a figure; the last line is
   ``ratio=<best student RI / teacher RI>``.

    python scripts/bench_quality.py --labeled ../shared/data/labeled/tcga-luad-lusc \\
        ../shared/data/labeled/kather16-samples ../shared/data/labeled/crc7k-mini
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]

# name -> (targets, teacher_view, augment); the first is the base the others vary one factor of
RECIPES = {
    "features · light · pathology": ("features", "light", "pathology"),
    "prototypes · light · pathology": ("prototypes", "light", "pathology"),
    "features · same · pathology": ("features", "same", "pathology"),
    "features · light · dinov2": ("features", "light", "dinov2"),
    "features · same · dinov2": ("features", "same", "dinov2"),
}
ROBUST_RECIPE = "features · light · pathology"


@dataclass
class Labelled:
    """A labelled folder's images, labels and splits (`all` for class-only folders)."""

    name: str
    images: list[np.ndarray]
    labels: np.ndarray
    splits: np.ndarray
    classes: list[str]


def load_labelled(root: Path) -> Labelled:
    """Read every image of a labelled folder (either layout) as uint8 RGB."""
    from evaluation.probes.sources import iter_images, labeled_folder_samples

    samples = labeled_folder_samples(root)
    classes = sorted({s.label for s in samples})
    return Labelled(
        root.name,
        list(iter_images(samples)),
        np.array([classes.index(s.label) for s in samples]),
        np.array([s.split for s in samples]),
        classes,
    )


def demo_config() -> dict:
    """The demo's model and data sections: the base every recipe changes."""
    from vitkd.config_files import config_path

    return yaml.safe_load(config_path("demo.yaml").read_text())


def teacher_config(teacher: str, demo: dict):
    """TeacherConfig of a `builtin:` name (the demo's shape) or an export folder (its spec)."""
    from vitkd.distill.config import TeacherConfig

    if teacher.startswith("builtin:"):
        t = demo["model"]["teacher"]
        return TeacherConfig(name=t["name"], weights=teacher, kwargs=dict(t["kwargs"]))
    spec = json.loads((Path(teacher) / "config.json").read_text())["vitkd"]["spec"]
    return TeacherConfig(name=spec["arch"], weights=teacher, kwargs=dict(spec["kwargs"]))


def distil(
    recipe: tuple[str, str, str],
    teacher,
    demo: dict,
    args: argparse.Namespace,
    **module_kwargs: object,
):
    """Train one student with a recipe at the shared budget; returns (EMA backbone, seconds).

    `module_kwargs` go to `DistillationModule` (e.g. `teachers=[...]` with `teacher=None`,
    `matryoshka=[...]`)."""
    import lightning as L

    from vitkd.data.collate import MaskConfig
    from vitkd.data.datamodule import CropConfig, DistillDataModule, TileSource
    from vitkd.distill.config import (
        HeadConfig,
        LossConfig,
        OptimConfig,
        StudentConfig,
        TeacherConfig,
    )
    from vitkd.distill.module import DistillationModule

    targets, view, augment = recipe
    m, d = demo["model"], demo["data"]
    heads = HeadConfig(
        **m.get("heads", {}),
        prototypes=1024,
        ibot_prototypes=1024,
        hidden_dim=512,
        bottleneck_dim=128,
        fit_steps=100,
    )
    module = DistillationModule(
        teacher=teacher or TeacherConfig(),
        student=StudentConfig(name=m["student"]["name"], kwargs=dict(m["student"]["kwargs"])),
        targets=targets,
        losses=module_kwargs.pop("losses", LossConfig()),
        heads=heads,
        optim=OptimConfig(**m["optim"]),
        seed=args.seed,
        **module_kwargs,
    )
    crops = dict(d["crops"], augment=augment, teacher_view=view)
    source = dict(d["source"], slides=args.slides, slide_mpp=args.slide_mpp)
    data = DistillDataModule(
        source=TileSource(**source),
        crops=CropConfig(**crops),
        masking=MaskConfig(patch_size=module.student.patch_size),
        batch_size=args.batch_size,
        samples_per_epoch=args.batch_size * args.steps,
        num_workers=args.workers,
        seed=args.seed,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        default_root_dir=tempfile.mkdtemp(prefix="bench_quality_"),  # fitted heads go there
        max_steps=args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    return module.ema.eval(), time.perf_counter() - start


def random_backbone(cfg, seed: int):
    """A randomly initialised backbone of a config's shape (fixed seed)."""
    from vitkd.models import build_backbone

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_backbone(cfg.name, **cfg.kwargs).eval()


def probe_scores(x: np.ndarray, data: Labelled) -> dict[str, float]:
    """kNN (k = 20) and logistic balanced accuracy: train/test when split, else leave-one-out."""
    from evaluation.probes.data import ProbeData
    from evaluation.probes.knn import knn_probe
    from evaluation.probes.logistic import logistic_probe
    from evaluation.probes.loo import loo_knn, loo_logistic

    train, test = data.splits == "train", data.splits == "test"
    if not train.any() or not test.any():
        return {"knn": loo_knn(x, data.labels), "logistic": loo_logistic(x, data.labels)}
    y, none = data.labels, np.zeros(0, dtype=np.int64)
    split = ProbeData(
        x[train], y[train], x[:0], none, x[test], y[test], [str(c) for c in data.classes]
    )
    return {
        "knn": float(knn_probe(split, k=20)["balanced_accuracy"]),
        "logistic": float(logistic_probe(split, max_iter=2000)["balanced_accuracy"]),
    }


def robustness(
    feats: dict[str, np.ndarray], labels: np.ndarray, conds: dict, k: int
) -> dict[str, float]:
    """RI (condition = centre, tile = slide) and top-10 retrieval across stain / scanner."""
    from evaluation.plism import evaluate_slides
    from evaluation.robustness_index import robustness_index

    names = list(feats)
    n = len(labels)
    x = np.concatenate([feats[c] for c in names])
    ri = robustness_index(
        x,
        biology=np.tile(labels, len(names)),
        centre=np.repeat(names, n),
        slide=np.tile(np.arange(n), len(names)),
        k=k,
        n_bootstrap=200,
    )
    plism = evaluate_slides(feats, conds, [10], progress=False)
    return {
        "ri": float(ri["ri"]),
        "ri_std": float(ri["ri_std"]),
        "top10_x_scanner": plism.summary["cross_scanner"]["top_10_accuracy"]["median"],
        "top10_x_staining": plism.summary["cross_staining"]["top_10_accuracy"]["median"],
    }


def _named(presets: tuple, name: str, flag: str):
    for preset in presets:
        if preset.name == name:
            return preset
    raise SystemExit(f"{flag} {name}: not one of {[p.name for p in presets]}")


def _robust_cells(result: dict[str, float], data: Labelled, first: Labelled) -> dict:
    """`<set>/ri` for every set; the top-10 retrieval columns for the first set only."""
    cells = {f"{data.name}/ri": result["ri"], f"{data.name}/ri_std": result["ri_std"]}
    if data is first:
        cells.update({k: v for k, v in result.items() if k.startswith("top10")})
    return cells


@dataclass
class Centres:
    """Tiles of several labelled folders as centres, with their shared class names."""

    images: list[np.ndarray]
    biology: np.ndarray
    centre: np.ndarray
    summary: str


def load_centres(items: list[str], class_map: str) -> Centres:
    """Read `CENTRE=DIR` folders, keep the classes `class_map` maps to a shared name."""
    mapping = dict(pair.split("=", 1) for pair in class_map.split(",") if pair)
    images, biology, centre, counts = [], [], [], {}
    for item in items:
        name, _, folder = item.partition("=")
        data = load_labelled(Path(folder))
        for img, label in zip(data.images, data.labels, strict=True):
            shared = mapping.get(data.classes[label], data.classes[label] if not mapping else None)
            if shared is None:
                continue
            images.append(img)
            biology.append(shared)
            centre.append(name)
            counts[(name, shared)] = counts.get((name, shared), 0) + 1
    classes = sorted({b for b in biology})
    summary = f"{len(images)} tiles, {len(classes)} shared classes ({', '.join(classes)}), " + (
        ", ".join(
            f"{c}: {sum(v for (n, _), v in counts.items() if n == c)}"
            for c in dict.fromkeys(centre)
        )
    )
    return Centres(images, np.array(biology), np.array(centre), summary)


def real_centre_ri(x: np.ndarray, centres: Centres, k: int) -> float:
    """PathoROB's RI with the source folder as the centre and each tile as its own slide."""
    from evaluation.robustness_index import robustness_index

    result = robustness_index(
        x, centres.biology, centres.centre, slide=np.arange(len(x)), k=k, n_bootstrap=200
    )
    return float(result["ri"])


def fidelity_scores(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """pc_r2, linear CKA and centred kNN agreement of CLS embeddings to the teacher's."""
    from vitkd.metrics import knn_agreement, linear_cka, pc_r2

    return {
        "pc_r2": pc_r2(student, teacher),
        "cka": linear_cka(student, teacher),
        "knn_agree_c": knn_agreement(student, teacher, 10, centred=True),
    }


def fmt(value: object) -> str:
    """A table cell: 3 decimals, or '–'."""
    return f"{value:.3f}" if isinstance(value, float) and np.isfinite(value) else "–"


def markdown(rows: list[dict], sets: list[Labelled], meta: dict) -> str:
    """The results table, one row per encoder."""
    first = sets[0].name
    cols = [("kind", "kind")]
    for s in sets:
        cols += [(f"{s.name} kNN", f"{s.name}/knn"), (f"{s.name} logistic", f"{s.name}/logistic")]
    cols += [
        (f"{first} kNN retention", "retention_knn"),
        (f"{first} logistic retention", "retention_logistic"),
        ("pc_r2", "pc_r2"),
        ("CKA", "cka"),
        ("kNN agree (centred)", "knn_agree_c"),
        *[(f"RI {s.name}", f"{s.name}/ri") for s in sets],
        ("RI real centres", "ri_centres"),
        ("top-10 x-scanner", "top10_x_scanner"),
        ("top-10 x-staining", "top10_x_staining"),
        ("train s", "seconds"),
    ]
    lines = [
        "| encoder | " + " | ".join(c[0] for c in cols) + " |",
        "| --- | " + " | ".join("---" for _ in cols) + " |",
    ]
    for r in rows:
        cells = [str(r.get(key, "")) if key == "kind" else fmt(r.get(key)) for _, key in cols]
        lines.append(f"| {r['encoder']} | " + " | ".join(cells) + " |")
    head = "\n".join(f"- {k}: {v}" for k, v in meta.items())
    return head + "\n\n" + "\n".join(lines) + "\n"


def figure(rows: list[dict], first: str, path: Path, ri_set: str = "") -> None:
    """Bars of probe accuracy, fidelity and robustness per encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (f"{first}/knn", f"{first}: kNN balanced accuracy"),
        ("pc_r2", "fidelity to the teacher (pc_r2)"),
        ("ri", f"{ri_set}: robustness index, simulated stains"),
        ("top10_x_staining", f"{first}: top-10 retrieval across stains"),
    ]
    names = [r["encoder"] for r in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 0.45 * len(rows) + 1.5))
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = [r.get(key, np.nan) for r in rows]
        colours = ["#444" if r["kind"] != "student" else "#2a7ab9" for r in rows]
        ax.barh(range(len(rows)), np.nan_to_num(values, nan=0.0), color=colours)
        for i, v in enumerate(values):
            ax.text(0.01, i, fmt(v), va="center", color="white", fontsize=8)
        ax.set_yticks(range(len(rows)), names if ax is axes[0] else [""] * len(rows))
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def add_evaluation_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `evaluate_encoders`: labelled folders, conditions, RI, real centres."""
    p.add_argument("--labeled", type=Path, nargs="+", required=True, help="labelled folders")
    p.add_argument(
        "--stains",
        nargs="+",
        default=["hematoxylin_rich", "eosin_rich", "pale_faded", "dark_overstained"],
        help="simulated stain presets (names of vitkd.data.augment.conditions.DEFAULT_STAINS)",
    )
    p.add_argument(
        "--scanners",
        nargs="+",
        default=["reference", "defocus_heavy_jpeg"],
        help="simulated scanner profiles (names of DEFAULT_SCANNERS)",
    )
    p.add_argument("--ri-k", type=int, default=10, help="neighbours of the robustness index")
    p.add_argument("--ri-set", help="labelled folder whose RI gives the ratio (name)")
    p.add_argument(
        "--centres",
        nargs="*",
        default=[],
        metavar="CENTRE=DIR",
        help="labelled folders from different sources, as the centres of a real RI",
    )
    p.add_argument(
        "--class-map",
        default="",
        help="OLD=NEW,... names shared by the centres' classes (unmapped classes are dropped)",
    )


def evaluate_encoders(
    encoders: dict[str, tuple[str, torch.nn.Module]],
    sets: list[Labelled],
    args: argparse.Namespace,
    seconds: dict[str, float] | None = None,
    centres: Centres | None = None,
) -> tuple[list[dict], str, dict]:
    """Score every encoder (the first is the teacher) and a colour histogram on `sets`.

    Args:
        encoders: label -> (kind, model) or (kind, model, dim); kinds `teacher`, `baseline`,
            `student`, `extra`; `dim` scores the first `dim` dimensions (a Matryoshka prefix).
        sets: labelled folders (`load_labelled`).
        args: `add_evaluation_arguments`' options (stains, scanners, ri_k, ri_set).
        seconds: training seconds per encoder label, for the table.
        centres: labelled folders as real centres (`load_centres`), or `None`.

    Returns:
        One row per encoder and the histogram (probes, fidelity to the first encoder,
        robustness, retention), the name of the RI set, and the simulated conditions.
    """
    from evaluation.baselines import colour_histogram
    from evaluation.encoder import embed_images
    from evaluation.robustness import condition_label
    from vitkd.data.augment import ConditionSimulator
    from vitkd.data.augment.conditions import DEFAULT_SCANNERS, DEFAULT_STAINS

    seconds = seconds or {}
    simulator = ConditionSimulator(
        stains=[_named(DEFAULT_STAINS, n, "--stains") for n in args.stains],
        scanners=[_named(DEFAULT_SCANNERS, n, "--scanners") for n in args.scanners],
    )
    first = sets[0]
    ri_set = args.ri_set or max(sets, key=lambda s: len(s.classes)).name
    if ri_set not in {s.name for s in sets}:
        raise ValueError(f"--ri-set {ri_set}: not one of {[s.name for s in sets]}")
    conds = {}
    rendered: dict[str, dict[str, list[np.ndarray]]] = {s.name: {} for s in sets}
    for cond in simulator.conditions:
        label = condition_label(cond.stain.name, cond.scanner.name)
        conds[label] = (cond.stain.name, cond.scanner.name)
        for s in sets:
            rendered[s.name][label] = [simulator.simulate(img, cond.id) for img in s.images]

    rows: list[dict] = []
    teacher_first = None
    for name, (kind, model, *rest) in encoders.items():
        print(f"evaluating {name}", flush=True)
        dim = rest[0] if rest else None
        row: dict = {"encoder": name, "kind": kind, "seconds": seconds.get(name)}
        feats = [embed_images(model, s.images, 64, progress=False, dim=dim) for s in sets]
        for s, x in zip(sets, feats, strict=True):
            for probe, value in probe_scores(x, s).items():
                row[f"{s.name}/{probe}"] = value
        if teacher_first is None:
            teacher_first = feats[0]
        else:
            row.update(fidelity_scores(feats[0], teacher_first))
        for s in sets:
            per_cond = {
                c: embed_images(model, x, 64, progress=False, dim=dim)
                for c, x in rendered[s.name].items()
            }
            row.update(_robust_cells(robustness(per_cond, s.labels, conds, args.ri_k), s, first))
        if centres is not None:
            x = embed_images(model, centres.images, 64, progress=False, dim=dim)
            row["ri_centres"] = real_centre_ri(x, centres, args.ri_k)
        rows.append(row)
    hist = {"encoder": "colour histogram (48 bins)", "kind": "baseline"}
    for s in sets:
        for probe, value in probe_scores(colour_histogram(s.images), s).items():
            hist[f"{s.name}/{probe}"] = value
    for s in sets:
        per_cond = {c: colour_histogram(x) for c, x in rendered[s.name].items()}
        hist.update(_robust_cells(robustness(per_cond, s.labels, conds, args.ri_k), s, first))
    if centres is not None:
        hist["ri_centres"] = real_centre_ri(colour_histogram(centres.images), centres, args.ri_k)
    rows.append(hist)
    for r in rows:
        r["ri"] = r[f"{ri_set}/ri"]
    teacher_row = rows[0]
    for r in rows:
        for probe in ("knn", "logistic"):
            r[f"retention_{probe}"] = (
                r[f"{first.name}/{probe}"] / teacher_row[f"{first.name}/{probe}"]
            )
    return rows, ri_set, conds


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, distil, evaluate, write the table and figure, print the ratio."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--teacher", default="builtin:demo-teacher", help="builtin:<name> or export")
    p.add_argument("--slides", nargs="+", default=["samples"], help="unlabelled slides")
    p.add_argument("--slide-mpp", type=float, default=0.5, help="MPP for slides without one")
    p.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument(
        "--encoders",
        nargs="*",
        default=[],
        metavar="LABEL=PATH",
        help="more encoders to evaluate beside the others (export folders or .ckpt files)",
    )
    p.add_argument("--steps", type=int, default=200, help="optimiser steps per student")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    add_evaluation_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu_quality.md")
    p.add_argument("--figure", type=Path, default=ROOT / "docs/quality.png")
    args = p.parse_args(argv)

    from vitkd.distill.config import StudentConfig
    from vitkd.models import build_teacher
    from vitkd.models.builtin import resolve_weights

    logging.getLogger("lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode")
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    sets = [load_labelled(root) for root in args.labeled]
    demo = demo_config()
    t_cfg = teacher_config(args.teacher, demo)
    s_cfg = StudentConfig(
        name=demo["model"]["student"]["name"], kwargs=dict(demo["model"]["student"]["kwargs"])
    )
    path = resolve_weights(t_cfg.weights, "--teacher")
    encoders = {
        "teacher": ("teacher", build_teacher(t_cfg.name, path, **t_cfg.kwargs)),
        "random ViT, teacher's shape": ("baseline", random_backbone(t_cfg, args.seed)),
        "random-init student": ("baseline", random_backbone(s_cfg, args.seed + 1)),
    }
    from evaluation.encoder import load_encoder

    for item in args.encoders:
        label, _, where = item.partition("=")
        if not where:
            p.error(f"--encoders {item!r}: write LABEL=PATH")
        encoders[label] = ("extra", load_encoder(where))
    seconds: dict[str, float] = {}
    for name in args.recipes:
        print(f"distilling {name} ({args.steps} steps, batch {args.batch_size})", flush=True)
        model, seconds[name] = distil(RECIPES[name], t_cfg, demo, args)
        encoders[name] = ("student", model)

    centres = load_centres(args.centres, args.class_map) if args.centres else None
    try:
        rows, ri_set, conds = evaluate_encoders(encoders, sets, args, seconds, centres)
    except ValueError as err:
        p.error(str(err))
    students = [r for r in rows if r["kind"] == "student"]
    best = max(students, key=lambda r: r["ri"]) if students else None
    meta = {
        "teacher": args.teacher,
        "slides": ", ".join(args.slides),
        "labelled sets": ", ".join(f"{s.name} ({len(s.labels)} tiles)" for s in sets),
        "budget per student": f"{args.steps} steps x batch {args.batch_size}, seed {args.seed}",
        "conditions": f"{len(conds)}: stains {args.stains} x scanners {args.scanners}",
        "RI": f"k = {args.ri_k}, condition = centre, source tile = slide; ratio on {ri_set}",
        "real centres": centres.summary if centres is not None else "none given",
        "wall time": f"{time.perf_counter() - started:.0f} s, {torch.get_num_threads()} threads",
    }
    table = markdown(rows, sets, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(f"# bench_quality ({time.strftime('%Y-%m-%d')})\n\n{table}")
    tmp.replace(args.out)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    figure(rows, sets[0].name, args.figure, ri_set)
    print(table)
    print(f"wrote {args.out} and {args.figure}")
    ratio = best["ri"] / rows[0]["ri"] if best else float("nan")
    print(f"ratio={ratio:.4f}")


if __name__ == "__main__":
    main()
