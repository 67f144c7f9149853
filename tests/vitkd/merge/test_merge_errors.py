"""What `python -m vitkd.merge` refuses, and how it says so; the atomic output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vitkd.merge.cli import main
from vitkd.models import build_student, export_backbone

TINY = {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 28}
ARCH = "vit_small_patch14_reg4_dinov2"


def _export(folder: Path, seed: int = 0, init: Path | None = None, **kwargs: object) -> Path:
    torch.manual_seed(seed)
    backbone = build_student(ARCH, with_mask_token=False, **{**TINY, **kwargs})
    extra = {"student_init": str(init)} if init is not None else {}
    return export_backbone(backbone, folder, extra=extra)


def _error(capsys: pytest.CaptureFixture, *args: object) -> str:
    assert main([str(a) for a in args]) == 2
    return capsys.readouterr().err


def test_other_architecture_names_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a, b = _export(tmp_path / "a"), _export(tmp_path / "b", depth=2)
    err = _error(capsys, a, b, "--method", "average", "--out", tmp_path / "m")
    assert f"{b / 'config.json'}: model_args is" in err and "'depth': 2" in err
    assert not (tmp_path / "m").exists()


def test_missing_key_and_wrong_shape_name_the_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a, b = _export(tmp_path / "a"), _export(tmp_path / "b", 1)
    weights = b / "model.safetensors"
    state = load_file(str(weights))
    save_file({k: v for k, v in state.items() if k != "norm.bias"}, str(weights))
    err = _error(capsys, a, b, "--method", "average", "--out", tmp_path / "m")
    assert f"{weights}: lacks tensor 'norm.bias'" in err
    save_file({**state, "norm.bias": torch.zeros(5)}, str(weights))
    err = _error(capsys, a, b, "--method", "average", "--out", tmp_path / "m")
    assert f"{weights}: tensor 'norm.bias' has shape (5,)" in err and "(32,)" in err


def test_base_required_and_must_be_shared(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = _export(tmp_path / "a"), _export(tmp_path / "b", 1)
    err = _error(capsys, a, b, "--method", "ties", "--out", tmp_path / "m")
    assert "records no initialisation" in err and "--base" in err
    i1, i2 = _export(tmp_path / "i1", 2), _export(tmp_path / "i2", 3)
    c, d = _export(tmp_path / "c", 4, init=i1), _export(tmp_path / "d", 5, init=i2)
    err = _error(capsys, c, d, "--method", "task-arithmetic", "--out", tmp_path / "m")
    assert "different initialisations" in err
    other = _export(tmp_path / "wide", 6, embed_dim=64, num_heads=2)
    err = _error(capsys, a, b, "--method", "ties", "--base", other, "--out", tmp_path / "m")
    assert str(other / "config.json") in err
    err = _error(capsys, a, "--method", "average", "--out", tmp_path / "m")
    assert "at least 2" in err
    err = _error(capsys, a, tmp_path / "nowhere", "--out", tmp_path / "m")
    assert f"{tmp_path / 'nowhere'}: not a folder" in err


def test_output_folder_is_replaced_whole_or_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a, b = _export(tmp_path / "a"), _export(tmp_path / "b", 1)
    out = tmp_path / "m"
    assert main([str(a), str(b), "--method", "average", "--out", str(out)]) == 0
    assert main([str(a), str(b), "--method", "ties", "--base", str(a), "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["vitkd"]["merge"]["method"] == "ties"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "m"]  # no temporary left
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    err = _error(capsys, a, b, "--method", "average", "--out", busy)
    assert "not an export folder" in err and (busy / "notes.txt").read_text() == "keep me"
