"""What a training step does once per optimiser step, and what it asks of the host."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from distill_fixtures import tiny_data, tiny_module, trainer
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader

from vitkd.data.collate import mask_index
from vitkd.distill.config import LossConfig


def _split(batch: dict[str, Any], parts: int) -> list[dict[str, Any]]:
    """A view-major multi-crop batch of B images -> `parts` batches of B / parts images."""
    n = batch["n_images"] // parts
    out = []
    for i in range(parts):
        micro: dict[str, Any] = {"n_images": n}
        for key in ("global", "local", "teacher", "masks"):
            x = batch[key]
            views = x.view(-1, batch["n_images"], *x.shape[1:])[:, i * n : (i + 1) * n]
            micro[key] = views.reshape(-1, *x.shape[1:])
        micro["mask_index"] = mask_index(micro["masks"])
        out.append(micro)
    return out


def _centres(module) -> dict[str, torch.Tensor]:
    objective = module.objective
    return {
        "dino": objective.dino_loss.center.center.clone(),
        "ibot": objective.ibot_loss.center.center.clone(),
    }


def _one_step(tmp_path, batches: list[dict[str, Any]], accumulate: int) -> dict[str, torch.Tensor]:
    module = tiny_module(targets="prototypes", losses=LossConfig(centering="softmax"))
    module.heads_ready.fill_(True)  # the same seeded random teacher heads in every run
    loader = DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    fit = trainer(tmp_path, 1, accumulate_grad_batches=accumulate)
    fit.fit(module, train_dataloaders=loader)
    assert fit.global_step == 1
    assert module.objective.dino_loss.center._pending is None  # applied, nothing left over
    return _centres(module)


def test_accumulated_micro_batches_move_the_softmax_centres_as_one_batch(tmp_path) -> None:
    dm = tiny_data(batch_size=4)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["masks"].any(), "no masked token: the iBOT centre would not be tested"
    whole = _one_step(tmp_path / "whole", [batch], accumulate=1)
    accumulated = _one_step(tmp_path / "accumulated", _split(batch, 2), accumulate=2)
    for name in ("dino", "ibot"):
        assert whole[name].abs().sum() > 0, name
        torch.testing.assert_close(accumulated[name], whole[name], rtol=1e-5, atol=1e-6)


def test_masked_tokens_gathered_by_index_give_the_boolean_indexing_loss() -> None:
    module = tiny_module(targets="prototypes", losses=LossConfig(centering="softmax"))
    module.heads_ready.fill_(True)
    dm = tiny_data()
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert "mask_index" in batch and batch["masks"].any()
    by_index = module.compute_losses(batch)
    by_mask = module.compute_losses({k: v for k, v in batch.items() if k != "mask_index"})
    for name, value in by_index.items():
        torch.testing.assert_close(value, by_mask[name], msg=name)


# aten ops that make the host wait for a CUDA device: reading a value (`.item()`, `bool()`,
# `float()`, `int()`, `.tolist()`) or an output whose size depends on the data
_SYNCING = {"_local_scalar_dense", "nonzero", "unique", "_unique", "_unique2", "masked_select"}


class _SyncAudit(TorchDispatchMode):
    """Records every op of a region that would synchronise host and CUDA device."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        bool_index = name == "index" and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None
        )
        if name in _SYNCING or bool_index:
            self.ops.append("index(bool)" if bool_index else name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("centering", ["softmax", "sinkhorn"])
def test_a_training_step_reads_one_value_from_the_device(tmp_path, centering: str) -> None:
    """On CPU the syncs cannot be timed, but the ops that would sync on a GPU can be counted."""
    module = tiny_module(targets="prototypes", losses=LossConfig(centering=centering))
    module.heads_ready.fill_(True)
    audits: list[_SyncAudit] = []
    original = module.training_step

    def audited(batch, batch_idx):
        audit = _SyncAudit()
        audits.append(audit)
        with audit:
            return original(batch, batch_idx)

    module.training_step = audited
    trainer(tmp_path, 3).fit(module, datamodule=tiny_data())
    assert len(audits) == 3
    # step 0 is the collapse watch's (every tenth step): it reads its four statistics too
    for audit in audits[1:]:
        assert audit.ops == ["_local_scalar_dense"], audit.ops  # check_finite's flag
