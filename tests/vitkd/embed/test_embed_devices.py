"""`--devices N`: slides split across processes, each output written once, same files as one process."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import make_cfg

from vitkd.embed import run
from vitkd.embed.distributed import RankFailedError, shard
from vitkd.embed.runlog import read_log
from vitkd.embed.sources import Source


def test_shard_gives_slide_i_to_rank_i_mod_n() -> None:
    sources = [Source(Path(f"s{i}.tif"), "slide") for i in range(5)]
    parts = [shard(sources, rank, 2) for rank in range(2)]
    assert [s.name for s in parts[0]] == ["s0", "s2", "s4"]
    assert [s.name for s in parts[1]] == ["s1", "s3"]


def test_two_cpu_processes_split_the_slides(  # ~13 s: two spawned processes import torch+timm
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    single = tmp_path / "single"
    run(make_cfg(three_slides, tiny_model_dir, single))
    out = tmp_path / "two"
    summary = run(make_cfg(three_slides, tiny_model_dir, out, devices=2))
    assert sorted(summary.done) == ["s0", "s1", "s2"]
    records = [r for r in read_log(out) if r["status"] == "done"]
    assert sorted((r["slide"], r["rank"]) for r in records) == [("s0", 0), ("s1", 1), ("s2", 0)]
    assert len({r["run"] for r in records}) == 1
    for name in ("s0", "s1", "s2"):
        with h5py.File(single / f"{name}.h5") as a, h5py.File(out / f"{name}.h5") as b:
            np.testing.assert_array_equal(a["coords"][()], b["coords"][()])
            np.testing.assert_allclose(a["features"][()], b["features"][()], rtol=1e-5, atol=1e-6)
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.lock"))


@pytest.mark.slow
def test_a_failing_rank_names_the_slide(
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    bad = three_slides[1].with_name("zz.svs")
    bad.write_bytes(b"not a slide")
    with pytest.raises(RankFailedError, match="zz"):
        run(make_cfg([three_slides[0], bad], tiny_model_dir, tmp_path / "out", devices=2))
