"""Fit teacher-side prototype heads on the frozen teacher backbone (public teachers ship none).

The stage is SwAV/DINO self-distillation restricted to the heads: the backbone is frozen, so its
features are fixed, and the heads learn a balanced clustering of them.

- DINO head: swapped prediction between the two global crops of an image: the online head on
  view `i` predicts the Sinkhorn-Knopp assignment of an EMA copy of the head on view `j != i`.
- iBOT head: token-level: the online head on feature-dropped patch tokens predicts the
  Sinkhorn-Knopp assignment of the EMA head on the clean tokens (a random subset of tokens per
  image keeps memory bounded).
- Sinkhorn-Knopp equipartition prevents collapse without a centre; gradients are averaged over
  ranks by hand because the heads are outside DDP's parameter set.
- The EMA heads are kept as the final teacher heads, frozen, and saved with the run.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from tqdm.auto import tqdm

from vitkd.distill.ema import ema_update
from vitkd.losses import DINOLoss
from vitkd.losses.centering import sinkhorn_knopp

if TYPE_CHECKING:
    from vitkd.distill.module import DistillationModule

log = logging.getLogger(__name__)

TOKENS_PER_IMAGE = 32
FEATURE_DROPOUT = 0.1
TEACHER_TEMP = 0.05
EMA_MOMENTUM = 0.99


def endless(loader: Iterable) -> Iterator:
    """Batches of `loader`, restarting it when exhausted (unlike `itertools.cycle`, which would
    keep every batch of the first pass in memory)."""
    while True:
        yield from loader


def _all_reduce_mean_grads(params: list[torch.nn.Parameter]) -> None:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world = torch.distributed.get_world_size()
    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(world)


def fit_teacher_heads(module: DistillationModule, datamodule: L.LightningDataModule) -> None:
    """Train `module.teacher_heads` for `heads.fit_steps` steps, then freeze them."""
    cfg = module.heads_cfg
    heads = module.teacher_heads
    rank_zero = module.trainer is None or module.trainer.is_global_zero
    log.info("fitting teacher heads on the frozen teacher for %d steps", cfg.fit_steps)
    for name, p in heads.named_parameters():
        # the weight-norm magnitude of the prototype layer stays fixed at 1, as in DINOv2
        p.requires_grad_(not name.endswith(("original0", "weight_g")))
    heads.train()
    target = copy.deepcopy(heads).requires_grad_(False).eval()
    params = [p for p in heads.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.fit_lr, weight_decay=0.04)
    dino = DINOLoss(cfg.prototypes, module.losses.student_temp).to(module.device)
    batches = endless(datamodule.train_dataloader())
    generator = torch.Generator(device="cpu").manual_seed(module.hparams.seed)
    for _ in tqdm(range(cfg.fit_steps), desc="teacher heads", disable=not rank_zero):
        # the same transfer path as training, so a device-side augmentation (which turns raw
        # tiles into crops after the copy) also runs here
        batch = move_data_to_device(next(batches), module.device)
        batch = datamodule.on_after_batch_transfer(batch, 0)
        n_images = int(batch["n_images"])
        tokens = module.forward_teacher(batch["teacher"])
        cls = tokens.cls.float()
        with torch.no_grad():
            t_logits = target["dino"](cls)
            t_probs = sinkhorn_knopp(t_logits, TEACHER_TEMP).view(-1, n_images, cfg.prototypes)
        online = heads["dino"](cls).view(-1, n_images, cfg.prototypes)
        loss = dino(online, None, t_probs)
        if "ibot" in heads:
            patches = tokens.patches.float()
            pick = torch.randint(
                patches.shape[1], (patches.shape[0], TOKENS_PER_IMAGE), generator=generator
            ).to(module.device)
            chosen = torch.gather(
                patches, 1, pick.unsqueeze(-1).expand(-1, -1, patches.shape[-1])
            ).flatten(0, 1)
            with torch.no_grad():
                t_patch = sinkhorn_knopp(target["ibot"](chosen), TEACHER_TEMP)
            s_patch = heads["ibot"](F.dropout(chosen, FEATURE_DROPOUT))
            log_p = F.log_softmax(s_patch / module.losses.student_temp, dim=-1)
            loss = loss + -(t_patch * log_p).sum(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _all_reduce_mean_grads(params)
        optimizer.step()
        ema_update(target, heads, EMA_MOMENTUM)
    heads.load_state_dict(target.state_dict())
    heads.requires_grad_(False).eval()
    log.info("teacher heads fitted; last head-fitting loss %.4f", float(loss.detach()))
