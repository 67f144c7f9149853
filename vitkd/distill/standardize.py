"""Fit each teacher's PHI-S standardisation on its outputs before training, the same on every rank."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from safetensors.torch import save_file
from tqdm.auto import tqdm

from vitkd.distill.head_fitting import endless

if TYPE_CHECKING:
    from vitkd.distill.module import DistillationModule

log = logging.getLogger(__name__)

STANDARDIZATION_FILE = "standardization.safetensors"


def _all_reduce(tensors: list[torch.Tensor]) -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for t in tensors:
            torch.distributed.all_reduce(t)


@torch.no_grad()
def fit_standardizers(
    module: DistillationModule, datamodule: L.LightningDataModule, n_images: int
) -> None:
    """Fit `module.standardizers` (PHI-S of every teacher's CLS and patch tokens) on about
    `n_images` training images per rank, from moments summed over ranks, and write them to the
    run folder (`standardization.safetensors`)."""
    rank_zero = module.trainer is None or module.trainer.is_global_zero
    keys = [e.key for e in module.teacher_entries]
    models = module.teacher_models()
    moments = {
        f"{key}_{part}": [
            torch.zeros((), dtype=torch.float64, device=module.device),
            torch.zeros(m.embed_dim, dtype=torch.float64, device=module.device),
            torch.zeros(m.embed_dim, m.embed_dim, dtype=torch.float64, device=module.device),
        ]
        for key, m in zip(keys, models, strict=True)
        for part in ("cls", "patch")
    }
    batches = endless(datamodule.train_dataloader())
    seen = 0
    progress = tqdm(total=n_images, desc="PHI-S standardisation", disable=not rank_zero)
    while seen < n_images:
        batch = move_data_to_device(next(batches), module.device)
        batch = datamodule.on_after_batch_transfer(batch, 0)
        for i, key in enumerate(keys):
            tokens = module.forward_teacher(batch["teacher"], i)
            for part, x in (("cls", tokens.cls), ("patch", tokens.patches)):
                x = x.double().reshape(-1, x.shape[-1])
                count, total, outer = moments[f"{key}_{part}"]
                count += x.shape[0]
                total += x.sum(dim=0)
                outer += x.T @ x
        seen += int(batch["n_images"])
        progress.update(int(batch["n_images"]))
    progress.close()
    for name, (count, total, outer) in moments.items():
        _all_reduce([count, total, outer])
        module.standardizers[name].fit_moments(int(count), total, outer)
    log.info("PHI-S fitted on %d images per rank for teachers %s", seen, ", ".join(keys))
    log_dir = module.trainer.log_dir if module.trainer is not None else None
    if rank_zero and log_dir:
        save_standardizers(module.standardizers, Path(log_dir) / STANDARDIZATION_FILE)


def save_standardizers(standardizers: torch.nn.ModuleDict, path: Path) -> Path:
    """Write the fitted transforms (`<key>_<cls|patch>.<mean|matrix|inverse_matrix>`) atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in standardizers.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)
    return path
