"""A rank-aware sampler whose draws are a pure function of the training position, for exact resumes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler

from vitkd.data.permutation import IndexPermutation

# draws computed per vectorised block: bounded memory whatever the epoch size
_BLOCK = 1 << 16


class DrawSampler(DistributedSampler):
    """Shuffled draws over the items, `samples_per_epoch` per epoch, split over ranks.

    The stream of draws is global and infinite: global position `p` belongs to pass
    `p // num_items` over the items (a fresh permutation per pass, from `seed`), and yields the
    *draw id* `p * num_items + item`. The permutation is an `IndexPermutation` evaluated per
    block of positions, so the sampler holds no O(num_items) state (a `randperm(...).tolist()`
    of 10^8 tiles is ~4 GB per rank). The dataset takes `draw % num_items` as the item and the
    draw id as the seed of its augmentation, so a draw is the same whatever the worker or the
    number of processes.

    Each epoch starts at the position given by `progress()` (batches already trained, e.g.
    `global_step * accumulate_grad_batches`) times the global batch, so the data of every step is
    a function of the step alone: a resumed run sees exactly what an uninterrupted one would,
    whatever Lightning decides about partially finished epochs. Rank `r` of `W` takes positions
    `start + r + k * W`, so the union of the ranks' batches is the single-process batch.

    Subclassing `DistributedSampler` keeps Lightning from wrapping it.

    Args:
        num_items: number of items in the dataset.
        samples_per_epoch: draws per epoch over all ranks (default: one pass over the items).
        batch_size: per-rank batch size (to turn `progress()` batches into positions).
        num_replicas: number of ranks.
        rank: this rank.
        seed: seed of the permutations.
        progress: batches already consumed per rank; `None` starts every epoch from
            `epoch * samples_per_epoch`.
    """

    def __init__(
        self,
        num_items: int,
        samples_per_epoch: int | None = None,
        batch_size: int = 1,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        progress: Callable[[], int] | None = None,
    ) -> None:
        if num_items <= 0:
            raise ValueError("the sampler needs at least one item to draw from")
        self.num_items = num_items
        self.samples_per_epoch = samples_per_epoch or num_items
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.progress = progress
        self.epoch = 0
        self.num_samples = self.samples_per_epoch // num_replicas
        self.total_size = self.num_samples * num_replicas
        self._perm: IndexPermutation | None = None
        self._perm_pass = -1

    def _permutation(self, pass_index: int) -> IndexPermutation:
        if self._perm is None or self._perm_pass != pass_index:
            self._perm = IndexPermutation(self.num_items, (self.seed, pass_index))
            self._perm_pass = pass_index
        return self._perm

    def items(self, positions: np.ndarray) -> np.ndarray:
        """The item drawn at each global position (int64 array in, int64 array out)."""
        positions = np.asarray(positions, dtype=np.int64)
        passes, offsets = np.divmod(positions, self.num_items)
        items = np.empty_like(positions)
        for pass_index in np.unique(passes):  # a block spans one or two passes
            here = passes == pass_index
            items[here] = self._permutation(int(pass_index))(offsets[here])
        return items

    def start_position(self) -> int:
        """Global position of the first draw of the epoch about to start."""
        if self.progress is not None:
            return self.progress() * self.batch_size * self.num_replicas
        return self.epoch * self.total_size

    def __iter__(self) -> Iterator[int]:
        start = self.start_position()
        for first in range(0, self.num_samples, _BLOCK):
            k = np.arange(first, min(first + _BLOCK, self.num_samples), dtype=np.int64)
            positions = start + self.rank + k * self.num_replicas
            items = self.items(positions)
            # Python ints: the draw id outgrows int64 after ~10^11 draws of 10^8 items
            for position, item in zip(positions.tolist(), items.tolist(), strict=True):
                yield position * self.num_items + item

    def __len__(self) -> int:
        return self.num_samples


class StepResumedLoader(DataLoader):
    """A DataLoader over a `DrawSampler` with progress: it resumes mid-epoch by itself.

    Its `DrawSampler` reads the position from the restored trainer step, so the uniform sampler
    has no loader state to save. Having `state_dict` / `load_state_dict` tells Lightning so;
    otherwise every mid-epoch resume warns that the results may be unreliable, which is not the
    case here. A sampler with state of its own (the adaptive one's loss table) saves it here.
    """

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state, if it has one (the position is the trainer's step)."""
        state = getattr(self.sampler, "state_dict", None)
        return state() if state is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the sampler's state, if it has one (see `state_dict`)."""
        load = getattr(self.sampler, "load_state_dict", None)
        if state_dict and load is not None:
            load(state_dict)
