"""Centre and Sinkhorn-Knopp over 2 gloo ranks equal one process on the concatenated batch."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vitkd.losses import SoftmaxCenter, sinkhorn_knopp

K = 16


def _data() -> tuple[torch.Tensor, torch.Tensor, list[slice]]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(11, K, generator=generator) * 20  # large enough to need the stable path
    valid = torch.rand(11, generator=generator) < 0.7
    valid[0] = True
    return logits, valid, [slice(0, 4), slice(4, 11)]  # uneven shards


def _worker(rank: int, port: int, want: torch.Tensor) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        logits, valid, shards = _data()
        shard = shards[rank]
        got = sinkhorn_knopp(logits[shard], 0.04, valid=valid[shard])
        torch.testing.assert_close(got, want[shard], rtol=1e-5, atol=1e-7)
        center = SoftmaxCenter(K, momentum=0.8)
        center.update(logits[shard], valid=valid[shard])
        expected = 0.2 * logits[valid].mean(dim=0, keepdim=True)
        torch.testing.assert_close(center.center, expected)
        # gradient accumulation: each rank accumulates two micro-batches, one all-reduce at step
        accumulated = SoftmaxCenter(K, momentum=0.8)
        rows = torch.arange(logits.shape[0])[shard]
        for micro in (rows[:2], rows[2:]):
            accumulated.accumulate(logits[micro], valid=valid[micro])
        accumulated.step()
        torch.testing.assert_close(accumulated.center, expected)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_rank_sinkhorn_and_centre_match_single_process() -> None:
    # computed without a process group: what the two ranks must reproduce from their shards
    logits, valid, _ = _data()
    want = sinkhorn_knopp(logits, 0.04, valid=valid)
    assert torch.isfinite(want).all()
    mp.spawn(_worker, args=(_free_port(), want), nprocs=2, join=True)
