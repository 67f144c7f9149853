"""One HTML page (and a Markdown twin) summarising evaluation and training runs."""

from collections.abc import Sequence
from pathlib import Path

from evaluation.outputs import staged_folder
from evaluation.report.collect import ReportInputError, Run, load_run, unique_labels
from evaluation.report.document import Section, to_html, to_markdown
from evaluation.report.robustness_index_section import robustness_index_section
from evaluation.report.sections import (
    fidelity_section,
    hest_section,
    plism_section,
    probe_section,
    robustness_section,
    train_section,
)
from slides.atomic import write_text_atomic


def build_report(
    run_dirs: Sequence[str | Path], out: str | Path, title: str = "vitkd evaluation report"
) -> tuple[Path, list[Run]]:
    """Write ``index.html``, ``report.md`` and the PNGs into `out`; returns the HTML path and runs.

    Everything is drawn in a temporary folder first and moved into `out` only when the whole
    report succeeded, so a failing report leaves no PNGs without a page.
    """
    if not run_dirs:
        raise ReportInputError("no run folders given")
    out = Path(out)
    runs = [load_run(p) for p in run_dirs]
    unique_labels(runs)
    with staged_folder(out, last=("index.html",)) as tmp:
        sections = _sections(runs, tmp)
        write_text_atomic(tmp / "report.md", to_markdown(title, sections))
        write_text_atomic(tmp / "index.html", to_html(title, sections))
    return out / "index.html", runs


def _sections(runs: Sequence[Run], out: Path) -> list[Section]:
    """The report's sections in a fixed order, figures drawn into `out`."""
    by_kind: dict[str, list[Run]] = {}
    for r in runs:
        by_kind.setdefault(r.kind, []).append(r)
    sections: list[Section] = []
    for r in by_kind.get("robustness", []):
        sections.append(robustness_section(r, out))
    for r in by_kind.get("robustness-index", []):
        sections.append(robustness_index_section(r, out))
    if "plism" in by_kind:
        sections.append(plism_section(by_kind["plism"], out))
    if "probe" in by_kind:
        sections.append(probe_section(by_kind["probe"]))
    if "hest" in by_kind:
        sections.append(hest_section(by_kind["hest"]))
    if "fidelity" in by_kind:
        sections.append(fidelity_section(by_kind["fidelity"]))
    for r in by_kind.get("train", []):
        sections.append(train_section(r, out))
    known = {"robustness", "robustness-index", "plism", "probe", "hest", "fidelity", "train"}
    unknown = sorted(set(by_kind) - known)
    if unknown:
        sections.append(
            Section("Other runs", [f"Not rendered (unknown command): {', '.join(unknown)}"])
        )
    return sections


__all__ = ["ReportInputError", "Run", "build_report", "load_run"]
