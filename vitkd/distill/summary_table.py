"""The fidelity part of a run summary as a small table: what each number means, before/after."""

from __future__ import annotations

from typing import Any

MEANINGS = {
    "pc_r2": "teacher's top principal directions predicted, each counting the same",
    "knn_agreement_centred": "shared nearest neighbours, common direction removed",
    "knn_agreement": "shared nearest neighbours (cosine)",
    "linear_cka": "linear CKA (dominated by the largest direction)",
    "ridge_r2": "teacher predicted by a linear map (variance-weighted)",
    "adaptor_cosine": "cosine of the trained adaptor's output to the teacher",
}


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _change(before: Any, after: Any) -> str:
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return ""
    delta = after - before
    if abs(delta) < 0.005:
        return "unchanged"
    return f"{'rose' if delta > 0 else 'FELL'} {delta:+.3f}"


def fidelity_table(before: dict[str, Any], after: dict[str, Any], model: str = "ema") -> str:
    """Rows `part metric before after change meaning` for the `model` (`ema` or `student`) of
    `summary.json`'s `fidelity_before` / `fidelity_after`; '' when nothing was measured."""
    now = after.get(model) or {}
    if not now or "cls" not in now:
        return ""
    lines = [
        f"fidelity of the {model} student to the teacher on {now.get('tiles')} held-out tiles "
        "(1 = the teacher's geometry; higher is closer)",
        f"{'':6}{'metric':24}{'before':>8}{'after':>8}  {'change':16}meaning",
    ]
    for part in ("cls", "patch"):
        for metric, meaning in MEANINGS.items():
            b = (before.get(part) or {}).get(metric)
            a = (now.get(part) or {}).get(metric)
            if a is None and b is None:
                continue
            lines.append(
                f"{part:6}{metric:24}{_fmt(b):>8}{_fmt(a):>8}  {_change(b, a):16}{meaning}"
            )
    return "\n".join(lines)
