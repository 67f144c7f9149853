"""Failing slides: skipped and logged with --skip-errors, otherwise a one-line error naming the slide."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_cfg
from torch.utils.data import DataLoader, Dataset

from vitkd.embed import run
from vitkd.embed.cli import main
from vitkd.embed.errors import SlideFailedError, describe_error
from vitkd.embed.runlog import read_log


@pytest.fixture()
def corrupt_slide(tmp_path: Path) -> Path:
    """A file with a slide extension and garbage inside."""
    path = tmp_path / "in" / "broken.svs"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"II*\x00" + b"\x13garbage" * 500)
    return path


@pytest.fixture()
def truncated_slide(three_slides: list[Path]) -> Path:
    """A real pyramidal TIFF cut to a third of its size."""
    path = three_slides[0].with_name("cut.tif")
    data = three_slides[0].read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def test_skip_errors_logs_bad_slides_and_finishes_the_others(
    three_slides: list[Path],
    corrupt_slide: Path,
    truncated_slide: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    inputs = [three_slides[0], corrupt_slide, truncated_slide, three_slides[1]]
    summary = run(make_cfg(inputs, tiny_model_dir, tmp_path / "out", skip_errors=True))
    assert summary.done == ["s0", "s1"]
    assert summary.failed == ["broken", "cut"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "embed_log.jsonl",
        "s0.h5",
        "s1.h5",
    ]
    errors = {r["slide"]: r for r in read_log(tmp_path / "out") if r["status"] == "error"}
    assert set(errors) == {"broken", "cut"}
    assert errors["broken"]["path"] == str(corrupt_slide)
    assert "broken.svs" in errors["broken"]["reason"]
    assert "\n" not in errors["cut"]["reason"] and errors["cut"]["reason"]


def test_without_skip_errors_the_error_names_the_slide(
    three_slides: list[Path], corrupt_slide: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(SlideFailedError, match="'broken'") as info:
        run(make_cfg([corrupt_slide, three_slides[0]], tiny_model_dir, tmp_path / "out"))
    assert info.value.path == corrupt_slide
    assert not (tmp_path / "out" / "s0.h5").exists()  # stopped at the first failure
    assert not list((tmp_path / "out").glob("*.lock"))


def test_cli_exits_nonzero_with_one_clear_line(
    corrupt_slide: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [str(corrupt_slide), "--model", str(tiny_model_dir), "--out", str(tmp_path / "out")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "vitkd.embed: error: slide 'broken'" in err and str(corrupt_slide) in err
    assert "Traceback" not in err
    assert main([*argv, "--skip-errors"]) == 0


def test_cli_bad_model_is_a_usage_error(
    three_slides: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [str(three_slides[0]), "--model", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nope.ckpt" in err and "Traceback" not in err
    assert main([str(three_slides[0]), "--model", "not-a-model-xyz", "--out", str(tmp_path)]) == 2
    assert "not-a-model-xyz" in capsys.readouterr().err


class _Exploding(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        raise ValueError(f"tile {index} is unreadable")


def test_worker_errors_are_reduced_to_their_last_line() -> None:
    with pytest.raises(ValueError) as info:
        next(iter(DataLoader(_Exploding(), batch_size=2, num_workers=1)))
    assert "Traceback" in str(info.value)  # what DataLoader hands over
    assert describe_error(info.value) == "ValueError: tile 0 is unreadable"
    assert describe_error(KeyError("k")) == "KeyError: 'k'"
