"""`python -m vitkd.cache`: a train config's teachers over TRIDENT coords files, cost first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cache_fixtures import MPP, SIZE, TEACHER

from slides.cli import main as slides_cli
from vitkd.cache import read_manifest
from vitkd.cache.cli import main
from vitkd.cache.dataset import CacheTiles


def _config(tmp_path: Path, slide_dir: Path, **source) -> Path:
    config = {
        "model": {"teachers": [{**TEACHER, "key": "tiny"}]},
        "data": {"source": {"slides": [str(slide_dir)], "mpp": MPP, "tile_size": SIZE, **source}},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vitkd.cache", "--help"], capture_output=True, text=True, check=True
    )
    assert "--patch-tokens" in out.stdout and "--encoding {jpeg,png}" in out.stdout


def test_cli_caches_trident_coords_and_declares_the_cost(
    slide_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    coords = tmp_path / "job"
    args = ["tile", str(slide_dir), "--out", str(coords), "--mpp", str(MPP), "--size", str(SIZE)]
    assert slides_cli([*args, "--layout", "trident"]) == 0
    assert (coords / "patches" / "s0_patches.h5").is_file()
    config = _config(tmp_path, slide_dir, coords=str(coords))
    out = tmp_path / "cache"
    capsys.readouterr()
    argv = ["--config", str(config), "--out", str(out), "--patch-tokens", "5", "--device", "cpu"]
    assert main([*argv, "--quality", "80"]) == 0
    printed = capsys.readouterr().out
    # cost before the first shard: 48-wide fp16 CLS, 5 x 48 fp16 patches, 5 uint16 indices
    assert (
        "teacher tiny: cls 96 B + patches 5x48x2 = 480 B + index 10 B = 586 B per tile" in printed
    )
    assert "image:" in printed and "(jpeg q80, 56 px)" in printed and "total:" in printed
    assert printed.index("total:") < printed.index("wrote shard-00000.h5")
    manifest = read_manifest(out)
    assert manifest.teachers[0]["key"] == "tiny" and manifest.tiles["coords"] == str(coords)
    assert manifest.n_tiles == 14  # the coords files' tiles (min tissue 0.5)
    assert len(CacheTiles(out)) == 14
    # a rerun with other settings is one error line, and the cache stays as it was
    assert main([*argv, "--quality", "70"]) == 2
    assert "image.quality: cached 80, asked 70" in capsys.readouterr().err
    assert main([*argv, "--quality", "80"]) == 0
    assert "0 shard(s) written, 1 already done" in capsys.readouterr().out


def test_missing_teacher_weights_name_the_teacher(slide_dir: Path, tmp_path: Path, capsys) -> None:
    config = {"model": {"teacher": {**TEACHER, "weights": str(tmp_path / "nope.safetensors")}}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert (
        main(["--config", str(path), "--out", str(tmp_path / "c"), "--slides", str(slide_dir)]) == 2
    )
    err = capsys.readouterr().err
    assert "teacher 'vit_small_patch14_reg4_dinov2'" in err and "nope.safetensors" in err
    assert not (tmp_path / "c").exists()
