"""Report figures as PNGs (matplotlib, Agg backend): heatmaps, top-k bars, projections, loss curves."""

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from slides.atomic import atomic_path

GROUP_TITLES = {
    "all": "all pairs",
    "cross_scanner": "cross-scanner",
    "cross_staining": "cross-staining",
    "cross_both": "cross-both",
}


def _save(fig: plt.Figure, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def pair_matrix(
    rows: Sequence[Mapping[str, object]], metric: str = "cosine_similarity"
) -> tuple[list[str], np.ndarray]:
    """Symmetric (slides x slides) matrix of a per-pair metric, diagonal 1 (a slide vs itself)."""
    names = sorted({str(r["slide_a"]) for r in rows} | {str(r["slide_b"]) for r in rows})
    pos = {n: i for i, n in enumerate(names)}
    mat = np.eye(len(names))
    for r in rows:
        i, j = pos[str(r["slide_a"])], pos[str(r["slide_b"])]
        mat[i, j] = mat[j, i] = float(r[metric])
    return names, mat


def heatmaps(
    tables: Mapping[str, Sequence[Mapping[str, object]]],
    path: Path,
    metric: str = "cosine_similarity",
) -> Path:
    """One PLISM-style heatmap of `metric` per condition pair for each model, shared colour scale."""
    mats = {m: pair_matrix(rows, metric) for m, rows in tables.items()}
    lo = min(float(mat.min()) for _, mat in mats.values())
    n = len(next(iter(mats.values()))[0])
    side = max(3.0, 0.3 * n)
    fig, axes = plt.subplots(
        1,
        len(mats),
        figsize=(side * len(mats) + 3.5, side + 2.5),
        squeeze=False,
        constrained_layout=True,
    )
    im = None
    for i, (ax, (model, (names, mat))) in enumerate(zip(axes[0], mats.items(), strict=True)):
        im = ax.imshow(mat, vmin=lo, vmax=1.0, cmap="viridis")
        ax.set_title(f"{model}: {metric.replace('_', ' ')}")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)), names if i == 0 else [], fontsize=6)
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03)
    return _save(fig, path)


def has_pairs(stats: Mapping[str, object] | None) -> bool:
    """A group's statistics come from at least one pair (JSON turns an empty group's NaN into None)."""
    if not stats or stats.get("n") == 0:
        return False
    median = stats.get("median")
    return isinstance(median, int | float) and median == median


def topk_bars(
    summaries: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]], path: Path
) -> Path:
    """Median top-k accuracy per group, one bar per model, one panel per group.

    A group without pairs (e.g. cross-staining when every slide has one staining) gets an empty
    panel that says "no pairs" instead of bars.
    """
    groups = [g for g in GROUP_TITLES if g != "all"]
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.2), sharey=True)
    width = 0.8 / max(1, len(summaries))
    for ax, g in zip(axes, groups, strict=True):
        drawn = False
        for i, (model, summary) in enumerate(summaries.items()):
            group = summary.get(g) or {}
            ks = sorted(
                int(m.split("_")[1])
                for m, st in group.items()
                if m.startswith("top_") and has_pairs(st)
            )
            if not ks:
                continue
            drawn = True
            stats = [group[f"top_{k}_accuracy"] for k in ks]
            meds = [float(st["median"]) for st in stats]
            # Quartiles when present (asymmetric bars); older results only carry the IQR.
            lo = [m - st.get("q1", m - st["iqr"] / 2) for m, st in zip(meds, stats, strict=True)]
            hi = [st.get("q3", m + st["iqr"] / 2) - m for m, st in zip(meds, stats, strict=True)]
            err = np.array([lo, hi])
            ax.bar(np.arange(len(ks)) + i * width, meds, width, yerr=err, label=model, capsize=2)
            ax.set_xticks(
                np.arange(len(ks)) + width * (len(summaries) - 1) / 2, [f"top-{k}" for k in ks]
            )
        if not drawn:
            ax.text(0.5, 0.5, "no pairs", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
        ax.set_title(GROUP_TITLES[g])
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("median accuracy (bar: quartiles)")
    if any(ax.get_legend_handles_labels()[0] for ax in axes):
        handles, labels = next(
            ax.get_legend_handles_labels() for ax in axes if ax.get_legend_handles_labels()[0]
        )
        axes[-1].legend(handles, labels, fontsize=8)
    return _save(fig, path)


def projection(
    features: Mapping[str, np.ndarray], stains: np.ndarray, scanners: np.ndarray, path: Path
) -> tuple[Path, str]:
    """2-D projection (UMAP when installed, else PCA) per model, colour = stain, marker = scanner."""
    try:
        import umap  # type: ignore[import-not-found]

        method = "UMAP"
    except ImportError:
        umap, method = None, "PCA"
    markers = "osv^D<>ph*X"
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(features), figsize=(5 * len(features), 4.5), squeeze=False)
    for ax, (model, x) in zip(axes[0], features.items(), strict=True):
        x = x - x.mean(0)
        if umap is not None:
            xy = umap.UMAP(n_components=2, random_state=0).fit_transform(x)
        else:
            _, _, vt = np.linalg.svd(x, full_matrices=False)
            xy = x @ vt[:2].T
        for si, s in enumerate(sorted(set(stains))):
            for mi, sc in enumerate(sorted(set(scanners))):
                sel = (stains == s) & (scanners == sc)
                ax.scatter(
                    xy[sel, 0],
                    xy[sel, 1],
                    s=10,
                    color=colours(si % 10),
                    marker=markers[mi % len(markers)],
                    label=f"{s} / {sc}",
                    alpha=0.7,
                )
        ax.set_title(f"{model} ({method})")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        fontsize=6,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        title="stain / scanner",
    )
    return _save(fig, path), method


def loss_curves(metrics_files: Sequence[Path], path: Path) -> Path | None:
    """Every '*loss*' column of Lightning CSV logs against step; None when there is none."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for f in metrics_files:
        with f.open(newline="") as fh:
            for row in csv.DictReader(fh):
                step = row.get("step", "")
                for k, v in row.items():
                    if "loss" in k and v not in ("", None) and step != "":
                        xs, ys = series.setdefault(k, ([], []))
                        xs.append(float(step))
                        ys.append(float(v))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, (xs, ys) in sorted(series.items()):
        ax.plot(xs, ys, label=name, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)
