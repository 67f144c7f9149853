"""EVA-style linear probe: one nn.Linear on frozen embeddings, AdamW, early stopping, several seeds."""

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from evaluation.probes.data import ProbeData, balanced_accuracy


@dataclass
class LinearProbeConfig:
    """Hyper-parameters; defaults are eva's offline patch-classification recipe.

    eva (kaiko-ai/eva ``configs/vision/pathology/offline/classification/*.yaml``): ``nn.Linear`` head,
    cross-entropy, AdamW lr 3e-4 (weight decay 0 per REFERENCE.md), batch 256, max 12,500 steps,
    validation once per epoch, EarlyStopping patience 7, best checkpoint restored, 5 runs.
    """

    lr: float = 3e-4
    weight_decay: float = 0.0
    batch_size: int = 256
    max_steps: int = 12_500
    patience: int = 7
    val_every: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)


def _predict(head: nn.Linear, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return head(x).argmax(1).numpy()


def train_linear_probe(
    data: ProbeData, seed: int, config: LinearProbeConfig, progress: bool = False
) -> dict[str, float]:
    """Train one head with one seed; returns monitor/eval balanced accuracy and steps run."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(data.x_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.int64)
    _, xm, ym = data.monitor_split()
    xm_t = torch.as_tensor(xm, dtype=torch.float32)
    head = nn.Linear(x.shape[1], data.num_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    n = x.shape[0]
    steps_per_epoch = max(1, -(-n // config.batch_size))
    val_every = config.val_every or steps_per_epoch
    best, best_state, bad, step = -1.0, None, 0, 0
    perm = torch.randperm(n, generator=gen)
    cursor = 0
    bar = tqdm(
        total=config.max_steps, desc=f"linear probe seed {seed}", disable=not progress, leave=False
    )
    while step < config.max_steps:
        if cursor >= n:
            perm, cursor = torch.randperm(n, generator=gen), 0
        idx = perm[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        loss = loss_fn(head(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % val_every == 0 or step == config.max_steps:
            score = balanced_accuracy(ym, _predict(head, xm_t))
            if score > best:
                best, bad = score, 0
                best_state = {k: v.clone() for k, v in head.state_dict().items()}
            else:
                bad += 1
                if bad >= config.patience:
                    break
    bar.close()
    if best_state is not None:
        head.load_state_dict(best_state)
    _, xe, ye = data.eval_split()
    return {
        "seed": seed,
        "monitor_balanced_accuracy": best,
        "balanced_accuracy": balanced_accuracy(
            ye, _predict(head, torch.as_tensor(xe, dtype=torch.float32))
        ),
        "steps": step,
    }


def linear_probe(
    data: ProbeData, config: LinearProbeConfig | None = None, progress: bool = True
) -> dict[str, object]:
    """EVA linear probe over `config.seeds`: balanced accuracy mean and std (population) over runs."""
    config = config or LinearProbeConfig()
    runs = [
        train_linear_probe(data, s, config, progress)
        for s in tqdm(config.seeds, desc="linear probe", disable=not progress)
    ]
    scores = np.array([r["balanced_accuracy"] for r in runs])
    return {
        "probe": "linear",
        "eval_split": data.eval_split()[0],
        "monitor_split": data.monitor_split()[0],
        "balanced_accuracy_mean": float(scores.mean()),
        "balanced_accuracy_std": float(scores.std()),
        "runs": runs,
        "config": {**asdict(config), "seeds": list(config.seeds)},
    }
