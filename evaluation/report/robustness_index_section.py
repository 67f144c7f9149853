"""Report section of a `robustness-index` run: RI / MaRI / CRoMa / APD / nIPD / clustering table, RI-vs-k curves, CRoMa violins."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from evaluation.report.collect import Run
from evaluation.report.document import Image, Section, Table, fmt
from slides.atomic import atomic_path


def _save(fig: plt.Figure, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def ri_curves(encoders: dict, path: Path) -> Path:
    """RI(k) per encoder, the operating k marked; 0.5 = neighbours follow biology and centre equally."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, r in encoders.items():
        ri = r["ri"]
        curve = [np.nan if v is None else v for v in ri.get("ri_curve", [])]
        if not curve:
            continue
        (line,) = ax.plot(ri["curve_k"], curve, label=name)
        k = ri.get("k")
        if k is not None and k <= len(curve):
            ax.plot([k], [curve[k - 1]], "o", color=line.get_color())
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="k (neighbours from other slides)", ylabel="Robustness Index", ylim=(0, 1))
    ax.legend(fontsize=8)
    return _save(fig, path)


def croma_violins(values: dict[str, np.ndarray], path: Path) -> Path:
    """Per-sample CRoMa distribution per encoder (> 0: the biological match is nearer)."""
    names = [n for n, v in values.items() if np.isfinite(v).any()]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(names), 3.6))
    data = [values[n][np.isfinite(values[n])] for n in names]
    if data:
        ax.violinplot(data, showmedians=True)
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set(ylabel="CRoMa per sample", ylim=(-1, 1))
    return _save(fig, path)


def robustness_index_section(run: Run, out: Path) -> Section:
    """Teacher vs student (or any encoders) on one cohort, one row per encoder."""
    encoders = run.results["encoders"]
    sec = Section(
        f"Robustness Index, MaRI, CRoMa — {run.label}",
        [
            f"{run.results.get('n_samples')} samples, design {run.results.get('design')}. "
            "RI (PathoROB): share of same-class/other-centre among same-class/other-centre and "
            "other-class/same-centre neighbours; MaRI weights them by exp(-d/tau); CRoMa (croma): "
            "per-sample (d_OS - d_SO)/(d_OS + d_SO) over the 5 nearest of each, median, LTM10 = "
            "mean of the worst 10 %, F(0) = share <= 0. APD (PathoROB): mean relative drop of "
            "logistic probes as the training set's centre-class correlation rises (0: none); "
            "nIPD (croma): that drop over above-chance skill, integrated over Cramér's V; "
            "clustering score (PathoROB): ARI of k-means with biology minus ARI with the centre. "
            "Higher is more robust for all but F(0)."
        ],
    )
    header = [
        "encoder",
        "k",
        "RI ± std",
        "MaRI",
        "CRoMa",
        "LTM10",
        "F(0)",
        "support",
        "APD",
        "APD OOD",
        "nIPD",
        "clustering ± std",
        "note",
    ]
    rows = []
    for name, r in encoders.items():
        ri, mari, croma = r["ri"], r["mari"], r["croma"]
        probe, clus = r.get("probe", {}), r.get("clustering", {})
        notes = [ri.get("note"), croma.get("note")]
        notes += [f"APD/nIPD: {probe['note']}"] if probe.get("note") else []
        notes += [f"clustering: {clus['note']}"] if clus.get("note") else []
        rows.append(
            [
                name,
                fmt(ri.get("k")),
                f"{fmt(ri.get('ri'))} ± {fmt(ri.get('ri_std'))}",
                fmt(mari.get("mari")),
                fmt(croma.get("croma")),
                fmt(croma.get("ltm")),
                fmt(croma.get("f0")),
                fmt(croma.get("support")),
                fmt(probe.get("apd"), 4),
                fmt(probe.get("apd_ood"), 4),
                fmt(probe.get("nipd")),
                f"{fmt(clus.get('clustering_score'))} ± {fmt(clus.get('clustering_score_std'))}",
                "; ".join(dict.fromkeys(x for x in notes if x)),
            ]
        )
    sec.blocks.append(Table(header, rows))
    for name, diff in run.results.get("differences", {}).items():
        sec.blocks.append(f"{name}: " + ", ".join(f"{k} {fmt(v, 3)}" for k, v in diff.items()))
    img = ri_curves(encoders, out / f"{run.label}_ri_curve.png")
    sec.blocks.append(Image(img.name, "Robustness Index against k (dot: the k reported)"))
    violins = run.path / "croma_values.npz"
    if violins.is_file():
        data = np.load(violins)
        img = croma_violins({n: data[n] for n in data.files}, out / f"{run.label}_croma.png")
        sec.blocks.append(Image(img.name, "Per-sample CRoMa (above 0: biology wins the margin)"))
    return sec
