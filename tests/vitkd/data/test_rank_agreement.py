"""Two gloo ranks, one of which fails to read one slide: both ranks keep the same tiles."""

import json
import os
import socket
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

import slides
import vitkd.data.datamodule as datamodule
from vitkd.data.datamodule import DistillDataModule, TileSource
from vitkd.data.rank_agreement import agree_on_counts

SIZE = 56


def _setup(slides_dir: str, coords: str, skip_errors: bool) -> dict:
    dm = DistillDataModule(
        source=TileSource(
            slides=[slides_dir], coords=coords, tile_size=SIZE, skip_errors=skip_errors
        ),
        num_workers=0,
    )
    try:
        dm.setup()
    except slides.SlideError as err:
        return {"error": str(err)}
    return {
        "slides": [p.stem for p in dm.tile_index.slides],
        "train": len(dm.train_tiles),
        "holdout": dm.holdout_tiles.only.tolist(),
    }


def _worker(rank: int, port: int, slides_dir: str, coords: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    real = datamodule.read_coords_count
    results = {}
    try:
        for case in ("fails", "differs"):

            def flaky(path: Path, *args, case=case):
                # rank 1 only: a transient read error on s1, or a different count for s2
                if rank == 1 and case == "fails" and path.stem == "s1":
                    raise OSError(f"{path}: Input/output error (simulated on rank 1)")
                if rank == 1 and case == "differs" and path.stem == "s2":
                    return real(path, *args) + 1
                return real(path, *args)

            datamodule.read_coords_count = flaky
            for skip in (True, False):
                results[f"{case}-skip={skip}"] = _setup(slides_dir, coords, skip)
    finally:
        datamodule.read_coords_count = real
        dist.destroy_process_group()
    Path(out, f"rank{rank}.json").write_text(json.dumps(results))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_slide_failing_on_one_rank_is_left_out_on_every_rank(three_slides, tmp_path) -> None:
    slides_dir, coords = three_slides
    args = (_free_port(), str(slides_dir), str(coords), str(tmp_path))
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    skipped = rank0["fails-skip=True"]
    assert skipped == rank1["fails-skip=True"]  # same slides, tiles and hold-out on both ranks
    assert skipped["slides"] == ["s0", "s2"]
    for result in (rank0["fails-skip=False"], rank1["fails-skip=False"]):
        assert result["error"].startswith("1 slide(s) could not be read")
        assert "s1.svs (rank(s) [1])" in result["error"] and "Input/output error" in result["error"]
    for skip in (True, False):
        for rank in (rank0, rank1):
            assert (
                "s2.svs: ranks see different tile counts" in rank[f"differs-skip={skip}"]["error"]
            )


def test_single_process_agreement_drops_failed_slides_or_names_them() -> None:
    paths = [Path("a.svs"), Path("b.svs")]
    assert agree_on_counts([3, -1], {1: "b.svs: broken"}, paths, True).tolist() == [3, -1]
    with pytest.raises(slides.SlideError, match=r"b\.svs \(rank\(s\) \[0\]\): b\.svs: broken"):
        agree_on_counts([3, -1], {1: "b.svs: broken"}, paths, False)
