"""EVA-style linear probe: one nn.Linear on frozen embeddings, AdamW, early stopping, several seeds."""

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from evaluation.probes.data import ProbeData, ProbeInputError, balanced_accuracy
from evaluation.probes.holdout import holdout_split

MONITORS = ("holdout", "eva")


@dataclass
class LinearProbeConfig:
    """Hyper-parameters; the training defaults are eva's offline patch-classification recipe.

    kaiko-ai/eva ``configs/vision/pathology/offline/classification/crc.yaml`` (commit
    0fa9bce686ffacb8d761a590fec1381c277c2d20): ``nn.Linear`` head, cross-entropy,
    ``torch.optim.AdamW`` with only ``lr: 0.0003`` set, so torch's default weight decay 0.01
    applies; batch 256, max 12,500 steps, validation once per epoch, EarlyStopping patience 7,
    best checkpoint restored, 5 runs.

    Early stopping differs by `monitor`:

    - ``holdout`` (default): a 'val' split when there is one besides the scored split, else
      `val_fraction` of train held out (grouped by slide when slide ids are known). The scored
      split is never watched.
    - ``eva``: eva's convention, val when present, else test: on datasets without a validation
      split (eva's MHIST config validates on its test split) the scored split is watched.

    An early stop before `min_steps` gets a warning: on small data a patience counted in
    epochs can stop after a handful of steps, with an under-trained head.
    """

    lr: float = 3e-4
    weight_decay: float = 0.01
    batch_size: int = 256
    max_steps: int = 12_500
    patience: int = 7
    val_every: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    monitor: str = "holdout"
    val_fraction: float = 0.2
    min_steps: int = 1000


@dataclass
class _Split:
    """Rows to fit on and rows to watch for early stopping, with what the watched rows are."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_monitor: np.ndarray
    y_monitor: np.ndarray
    info: dict[str, object]


def monitor_split(data: ProbeData, config: LinearProbeConfig, seed: int) -> _Split:
    """The rows the head fits on and the rows early stopping watches, per `config.monitor`."""
    if config.monitor not in MONITORS:
        raise ProbeInputError(f"monitor {config.monitor!r}: choose one of {list(MONITORS)}")
    eval_name = data.eval_split()[0]
    name, xm, ym = data.monitor_split()
    if config.monitor == "eva" or name != eval_name:
        info = {"split": name, "rows": len(ym), "watches_scored_split": name == eval_name}
        return _Split(data.x_train, data.y_train, xm, ym, info)
    held = holdout_split(
        data.y_train, data.groups_train, config.val_fraction, seed, data.group_name
    )
    info = {
        "split": "train-holdout",
        "rows": len(held.monitor),
        "fraction": config.val_fraction,
        "grouped_by": held.grouped_by,
        "groups": held.n_groups,
        "watches_scored_split": False,
    }
    return _Split(
        data.x_train[held.fit],
        data.y_train[held.fit],
        data.x_train[held.monitor],
        data.y_train[held.monitor],
        info,
    )


def describe_monitor(info: dict[str, object]) -> str:
    """One line saying which split early stopping watched."""
    if info["split"] == "train-holdout":
        grouped = f", grouped by {info['grouped_by']}" if info.get("grouped_by") else ""
        return f"early stopping on {info['rows']} train rows held out{grouped}"
    warn = " (the scored split: eva-compatible mode)" if info.get("watches_scored_split") else ""
    return f"early stopping on the {info['split']} split{warn}"


def _predict(head: nn.Linear, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return head(x).argmax(1).numpy()


def train_linear_probe(
    data: ProbeData, seed: int, config: LinearProbeConfig, progress: bool = False
) -> dict[str, object]:
    """Train one head with one seed; returns monitor/eval balanced accuracy and steps run."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    split = monitor_split(data, config, seed)
    x = torch.as_tensor(split.x_fit, dtype=torch.float32)
    y = torch.as_tensor(split.y_fit, dtype=torch.int64)
    xm_t = torch.as_tensor(split.x_monitor, dtype=torch.float32)
    head = nn.Linear(x.shape[1], data.num_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    n = x.shape[0]
    steps_per_epoch = max(1, -(-n // config.batch_size))
    val_every = config.val_every or steps_per_epoch
    best, best_state, bad, step, stopped = -1.0, None, 0, 0, False
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
            score = balanced_accuracy(split.y_monitor, _predict(head, xm_t))
            if score > best:
                best, bad = score, 0
                best_state = {k: v.clone() for k, v in head.state_dict().items()}
            else:
                bad += 1
                if bad >= config.patience:
                    stopped = True
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
        "early_stopped": stopped,
        "monitor": split.info,
    }


def linear_probe(
    data: ProbeData, config: LinearProbeConfig | None = None, progress: bool = True
) -> dict[str, object]:
    """EVA linear probe over `config.seeds`: balanced accuracy mean and std (population) over runs.

    The result says which split early stopping watched (``monitor_split``, ``monitor``) and
    carries a warning (also issued with :func:`warnings.warn`) when a run stopped before
    `config.min_steps`.
    """
    config = config or LinearProbeConfig()
    runs = [
        train_linear_probe(data, s, config, progress)
        for s in tqdm(config.seeds, desc="linear probe", disable=not progress)
    ]
    scores = np.array([r["balanced_accuracy"] for r in runs])
    monitor = dict(runs[0]["monitor"])
    notes = []
    floor = min(config.min_steps, config.max_steps)
    early = sorted(int(r["steps"]) for r in runs if r["early_stopped"] and r["steps"] < floor)
    if early:
        span = f"{early[0]}" if early[0] == early[-1] else f"{early[0]}-{early[-1]}"
        notes.append(
            f"linear probe: early stopping fired after {span} steps in {len(early)} of "
            f"{len(runs)} runs (fewer than {floor} of at most {config.max_steps}), watching "
            f"{monitor['rows']} rows ({monitor['split']}); the head may be under-trained: "
            "raise --patience or give a larger validation split"
        )
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return {
        "probe": "linear",
        "eval_split": data.eval_split()[0],
        "monitor_split": monitor["split"],
        "monitor": monitor,
        "balanced_accuracy_mean": float(scores.mean()),
        "balanced_accuracy_std": float(scores.std()),
        "runs": runs,
        "warnings": notes,
        "config": {**asdict(config), "seeds": list(config.seeds)},
    }
