"""Selecting slides by the `domain` column of CSV slide lists, and the data option that uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from slides import SAMPLE_SLIDES, DomainError, find_slides, select_domains, slide_domains


def _csv(tmp_path: Path, text: str, name: str = "slides.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_domains_keep_csv_order_and_resolve_relative_paths(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "path,domain\na.svs,skin\nsub/b.svs,colon\n/abs/c.svs,skin\nd.svs,\n")
    assert slide_domains(csv) == [
        (tmp_path / "a.svs", "skin"),
        (tmp_path / "sub/b.svs", "colon"),
        (Path("/abs/c.svs"), "skin"),
        (tmp_path / "d.svs", ""),
    ]
    assert select_domains([str(csv)], ["skin"]) == [tmp_path / "a.svs", Path("/abs/c.svs")]
    assert select_domains([csv], ["colon", "skin"]) == [
        tmp_path / "a.svs",
        tmp_path / "sub/b.svs",
        Path("/abs/c.svs"),
    ]
    # the plain list still reads every row, the domain column changes nothing there
    assert len(find_slides(csv)) == 4


def test_unknown_domain_names_the_csv_and_the_available_domains(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "slide,Domain,site\na.svs,skin,x\nb.svs,colon,y\nc.svs,colon,y\n")
    with pytest.raises(DomainError) as err:
        select_domains([csv], ["lung", "skin"])
    message = str(err.value)
    assert "'lung'" in message and str(csv) in message
    assert "colon (2 slides), skin (1 slide)" in message
    assert "'skin'" not in message  # only the unknown one is named as unknown


def test_sources_without_domains_are_errors(tmp_path: Path) -> None:
    no_column = _csv(tmp_path, "path,site\na.svs,x\n")
    with pytest.raises(DomainError, match=r"no 'domain' column.*path, site"):
        select_domains([no_column], ["x"])
    with pytest.raises(DomainError, match=r"'samples', which is not a \.csv"):
        select_domains(["samples"], ["x"])
    with pytest.raises(DomainError, match=r"needs data\.source\.slides"):
        select_domains([], ["x"])
    with pytest.raises(DomainError, match="empty list"):
        select_domains([no_column], [])
    with pytest.raises(DomainError, match="no such CSV"):
        select_domains([tmp_path / "missing.csv"], ["x"])


def test_data_module_option_selects_the_domain(tmp_path: Path) -> None:
    from vitkd.data.datamodule import DistillDataModule, TileSource

    skin, colon = SAMPLE_SLIDES
    csv = _csv(tmp_path, f"path,domain\n{skin},skin\n{colon},colon\n")
    dm = DistillDataModule(TileSource(slides=[str(csv)], domains=["colon"]))
    assert dm.slide_paths() == [colon]
    assert DistillDataModule(TileSource(slides=[str(csv)])).slide_paths() == [skin, colon]
    with pytest.raises(DomainError, match="available domains: colon"):
        DistillDataModule(TileSource(slides=[str(csv)], domains=["lung"])).slide_paths()
    with pytest.raises(DomainError, match=r"needs data\.source\.slides"):
        DistillDataModule(TileSource(domains=["skin"])).slide_paths()
