"""`--dim N`: the first N dimensions of a Matryoshka export, refused where not trained nested."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY_ARCH, TINY_KWARGS, make_cfg

from vitkd.embed import run
from vitkd.embed.cli import main
from vitkd.embed.errors import SlideFailedError
from vitkd.models import build_backbone, export_backbone


@pytest.fixture(scope="module")
def nested_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(11)
    backbone = build_backbone(TINY_ARCH, **TINY_KWARGS)
    out = tmp_path_factory.mktemp("nested") / "nested-vit"
    return export_backbone(backbone, out, extra={"matryoshka": [64, 32, 16]})


def _features(path: Path) -> tuple[np.ndarray, dict]:
    with h5py.File(path, "r") as f:
        return f["features"][()], dict(f["features"].attrs)


@pytest.mark.parametrize("tokens", ["cls", "cls+mean", "patch"])
def test_dim_keeps_the_first_dimensions_of_every_token(
    three_slides: list[Path], nested_model_dir: Path, tmp_path: Path, tokens: str
) -> None:
    full = make_cfg(three_slides[:1], nested_model_dir, tmp_path / "full", tokens=tokens)
    run(full)
    cut = make_cfg(three_slides[:1], nested_model_dir, tmp_path / "cut", tokens=tokens, dim=16)
    run(cut)
    a, _ = _features(tmp_path / "full" / "s0.h5")
    b, attrs = _features(tmp_path / "cut" / "s0.h5")
    if tokens == "cls+mean":
        expected = np.concatenate([a[:, :16], a[:, 64:80]], axis=-1)
    else:
        expected = a[..., :16]
    np.testing.assert_allclose(b, expected, rtol=1e-5, atol=1e-6)
    assert attrs["dim"] == 16 and list(attrs["matryoshka"]) == [64, 32, 16]


def test_dim_not_trained_is_refused_naming_the_sizes(
    three_slides: list[Path], nested_model_dir: Path, tiny_model_dir: Path, tmp_path: Path, capsys
) -> None:
    args = [str(three_slides[0]), "--out", str(tmp_path / "o"), "--mpp", "1.0", "--size", "56"]
    assert main([*args, "--model", str(nested_model_dir), "--dim", "8"]) == 2
    assert "trained with nested sizes [64, 32, 16]" in capsys.readouterr().err
    assert main([*args, "--model", str(tiny_model_dir), "--dim", "32"]) == 2
    assert "not trained with nested (Matryoshka) sizes, so only 64" in capsys.readouterr().err
    assert not list((tmp_path / "o").glob("*.h5"))


def test_resume_with_another_dim_is_refused(
    three_slides: list[Path], nested_model_dir: Path, tmp_path: Path
) -> None:
    run(make_cfg(three_slides[:1], nested_model_dir, tmp_path / "o", dim=32))
    with pytest.raises(SlideFailedError, match=r"dim=32 \(this run: None\)"):
        run(make_cfg(three_slides[:1], nested_model_dir, tmp_path / "o"))
