"""Losses cite papers or upstream files by link, never the project-external REFERENCE.md."""

import importlib
import pkgutil
from pathlib import Path

import pytest

import vitkd.losses

ROOT = Path(__file__).resolve().parents[3]
LOSS_MODULES = [m.name for m in pkgutil.iter_modules(vitkd.losses.__path__)]
CITING = ["dino", "ibot", "koleo", "feature", "response_kl", "relation"]


@pytest.mark.parametrize("name", CITING)
def test_loss_docstring_links_its_sources(name: str) -> None:
    assert name in LOSS_MODULES
    doc = importlib.import_module(f"vitkd.losses.{name}").__doc__ or ""
    assert "https://arxiv.org/abs/" in doc or "https://github.com/" in doc, name


def test_no_code_cites_a_file_the_project_does_not_ship() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in ("slides", "vitkd", "evaluation", "scripts")
        for path in sorted((ROOT / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "REFERENCE.md" in line
    ]
    assert hits == [], f"cite the paper (arXiv link) or upstream file + commit instead: {hits}"
