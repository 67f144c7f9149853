"""Turn loaded runs into report sections: tables side by side and the figures."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.report import plots
from evaluation.report.collect import Run
from evaluation.report.document import Image, Section, Table, fmt


def _median_iqr(stats: dict) -> str:
    if not plots.has_pairs(stats):
        return "no pairs"
    return f"{fmt(stats.get('median'))} ({fmt(stats.get('iqr'))})"


def plism_table(
    summaries: dict[str, dict],
    leaderboards: dict[str, float | None],
    notes: dict[str, str | None] | None = None,
) -> Table:
    """Leaderboard then median (IQR) of every group x metric, one column per model/run.

    A missing leaderboard shows its reason from `notes` (e.g. "no cross-staining pairs").
    """
    models = list(summaries)
    notes = notes or {}
    rows = [
        [
            "leaderboard (mean of 4 medians)",
            *[
                fmt(leaderboards[m])
                if leaderboards[m] is not None or not notes.get(m)
                else f"– ({notes[m]})"
                for m in models
            ],
        ]
    ]
    first = summaries[models[0]]
    for group in first:
        for metric in first[group]:
            rows.append(
                [
                    f"{plots.GROUP_TITLES.get(group, group)} · {metric}",
                    *[_median_iqr(summaries[m].get(group, {}).get(metric, {})) for m in models],
                ]
            )
    return Table(["metric, median (IQR)", *models], rows)


def robustness_section(run: Run, out: Path) -> Section:
    """Teacher vs student PLISM table, heatmaps, top-k bars and the embedding projection."""
    models = run.results["models"]
    conds = run.results.get("conditions", [])
    sec = Section(
        f"Robustness (simulated PLISM) — {run.label}",
        [
            f"{run.results.get('n_tiles')} tiles x {len(conds)} conditions (stain x scanner) from {', '.join(run.results.get('slides', []))}."
        ],
    )
    sec.blocks.append(
        plism_table(
            {m: r["summary"] for m, r in models.items()},
            {m: r["leaderboard"] for m, r in models.items()},
            {m: r.get("leaderboard_note") for m, r in models.items()},
        )
    )
    tables = {m: [r for r in run.table if r.get("model") == m] for m in models}
    if all(tables.values()):
        img = plots.heatmaps(tables, out / f"{run.label}_heatmap.png")
        sec.blocks.append(
            Image(img.name, "Cosine similarity of matched tiles for every pair of conditions")
        )
    img = plots.topk_bars(
        {m: r["summary"] for m, r in models.items()}, out / f"{run.label}_topk.png"
    )
    sec.blocks.append(
        Image(
            img.name, "Top-k retrieval of the same tile under another condition (median, IQR bar)"
        )
    )
    if run.projection is not None:
        data = np.load(run.projection)
        feats = {
            k.removesuffix("_features"): data[k] for k in data.files if k.endswith("_features")
        }
        img, method = plots.projection(
            feats, data["stain"], data["scanner"], out / f"{run.label}_projection.png"
        )
        sec.blocks.append(
            Image(
                img.name,
                f"{method} of tile embeddings, colour = stain preset, marker = scanner profile",
            )
        )
    return sec


def plism_section(runs: Sequence[Run], out: Path) -> Section:
    """PLISM runs side by side (one column per run)."""
    sec = Section("PLISM")
    # Run folders can share a name; the encoder recorded in the embeddings tells them apart.
    encoders = [f"{r.label}: {r.results['encoder']}" for r in runs if r.results.get("encoder")]
    if encoders:
        sec.blocks.append("Encoders — " + "; ".join(encoders))
    summaries = {r.label: r.results["summary"] for r in runs}
    sec.blocks.append(
        plism_table(
            summaries,
            {r.label: r.results.get("leaderboard") for r in runs},
            {r.label: r.results.get("leaderboard_note") for r in runs},
        )
    )
    img = plots.topk_bars(summaries, out / "plism_topk.png")
    sec.blocks.append(Image(img.name, "Top-k accuracy per group (median, IQR bar)"))
    tables = {r.label: r.table for r in runs if r.table}
    if tables:
        img = plots.heatmaps(tables, out / "plism_heatmap.png")
        sec.blocks.append(Image(img.name, "Cosine similarity per slide pair"))
    return sec


def probe_section(runs: Sequence[Run]) -> Section:
    """Balanced accuracy per probe, one column per run."""
    probes: list[str] = []
    for r in runs:
        probes += [p for p in r.results.get("probes", {}) if p not in probes]
    rows = []
    for p in probes:
        cells = []
        for r in runs:
            res = r.results.get("probes", {}).get(p)
            if res is None:
                cells.append("–")
            elif "balanced_accuracy_mean" in res:
                cells.append(
                    f"{fmt(res['balanced_accuracy_mean'])} ± {fmt(res['balanced_accuracy_std'])}"
                )
            else:
                cells.append(fmt(res.get("balanced_accuracy")))
        rows.append([p, *cells])
    return Section("Probes (balanced accuracy)", [Table(["probe", *[r.label for r in runs]], rows)])


def hest_section(runs: Sequence[Run]) -> Section:
    """Pearson r (mean ± std over folds) per run."""
    rows = [
        [
            r.label,
            f"{fmt(r.results.get('pearson_mean'))} ± {fmt(r.results.get('pearson_std'))}",
            str(len(r.results.get("folds", []))),
            str(r.results.get("n_targets", "–")),
        ]
        for r in runs
    ]
    return Section("HEST-style regression", [Table(["run", "Pearson r", "folds", "targets"], rows)])


def fidelity_section(runs: Sequence[Run]) -> Section:
    """Fidelity metrics and probe retention (student vs teacher)."""
    sec = Section("Teacher-student fidelity")
    keys = [
        "pc_r2",
        "linear_cka",
        "ridge_r2",
        "knn_agreement",
        "knn_agreement_centred",
        "n_tiles",
    ]
    sec.blocks.append(
        Table(
            ["metric", *[r.label for r in runs]],
            [[k, *[fmt(r.results.get("fidelity", {}).get(k)) for r in runs]] for k in keys],
        )
    )
    for r in runs:
        ret = r.results.get("probe_retention")
        if ret:
            sec.blocks.append(
                Table(
                    [f"probe ({r.label})", "teacher", "student", "retention"],
                    [
                        [p, fmt(v["teacher"]), fmt(v["student"]), fmt(v["retention"])]
                        for p, v in ret.items()
                    ],
                )
            )
    return sec


def train_section(run: Run, out: Path) -> Section:
    """Loss curves and summary.json numbers of a vitkd training run."""
    sec = Section(f"Training — {run.label}")
    s = run.summary
    if s:
        rows = [
            [k, fmt(s.get(k))]
            for k in ("teacher", "student", "steps", "seconds", "loss_start_mean", "loss_end_mean")
            if k in s
        ]
        sec.blocks.append(Table(["field", "value"], rows))
        rows = _fidelity_rows(s.get("fidelity_before") or {}, s.get("fidelity_after") or {})
        if rows:
            sec.blocks.append(
                Table(
                    [
                        "fidelity on held-out tiles",
                        "before training",
                        "after (EMA, exported)",
                        "after (online student)",
                    ],
                    rows,
                )
            )
    img = plots.loss_curves(run.metrics_csv, out / f"{run.label}_loss.png")
    if img is not None:
        sec.blocks.append(Image(img.name, "Training losses from the Lightning CSV log"))
    elif not s:
        sec.blocks.append("No loss columns in the logs.")
    return sec


def _fidelity_rows(before: dict, after: dict) -> list[list[str]]:
    """Rows `token kind · metric` of `summary.json`'s nested fidelity blocks."""
    ema, online = after.get("ema") or {}, after.get("student") or {}
    rows = []
    for kind in ("cls", "patch"):
        metrics = dict.fromkeys(
            [*(before.get(kind) or {}), *(ema.get(kind) or {}), *(online.get(kind) or {})]
        )
        for metric in metrics:
            if metric == "tokens":
                continue
            values = [(block.get(kind) or {}).get(metric) for block in (before, ema, online)]
            rows.append([f"{kind} · {metric}", *[fmt(v) for v in values]])
    return rows
