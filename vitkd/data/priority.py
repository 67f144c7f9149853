"""Per-tile running distillation loss and loss-proportional draws, in windows fixed ahead of use.

The table is what makes adaptive tile selection (`vitkd.data.adaptive`) deterministic: every
rank holds the same table, changes it only at fixed positions of the draw stream, and draws a
window's tiles once, from a generator of `(seed, window)`, before the sampler needs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# tiles per block: a draw picks a block by its summed weight, then a tile inside it, so sampling
# needs one float per block beyond the table instead of a cumulative sum over every tile
_BLOCK = 4096
_FLOAT16_MAX = float(np.finfo(np.float16).max)


class TilePriorities:
    """Running loss of every tile, and the tiles drawn at each global position of the stream.

    **Distribution.** A draw is uniform over the tiles with probability `floor`, otherwise
    proportional to `w_i = loss_i ** power`, where `loss_i` is tile `i`'s EMA of its distillation
    loss (`ema = momentum * ema + (1 - momentum) * loss`; the first observation sets it):

        p_i = floor / N + (1 - floor) * w_i / sum_j w_j

    so every tile keeps at least `floor / N`, a `floor` share of its uniform chance, whatever the
    losses. A tile not yet observed weighs the mean weight of the observed ones (neither favoured
    nor starved); before any observation the draws are uniform. This is loss-based prioritised
    sampling (Loshchilov & Hutter 2015, "Online batch selection for faster training of neural
    networks", https://arxiv.org/abs/1511.06343; Schaul et al. 2016, prioritised experience
    replay, for `power` and the uniform share) without importance weights: the bias towards
    hard tiles is the point (Katharopoulos & Fleuret 2018, https://arxiv.org/abs/1803.00942,
    reweight to stay unbiased; a distillation student gains from the bias).

    **Memory.** One float16 per tile (200 MB at 10^8 tiles, in memory and in each checkpoint;
    NaN marks a tile not yet seen) plus two numbers per 4,096-tile block. float16 keeps three
    significant digits, ample for a sampling weight. A hashed bucket table would cost less but
    would share one loss among unrelated tiles, which defeats the purpose.

    **Windows.** Positions `[k L, (k+1) L)` with `L = refresh_every * draws_per_batch` form
    window `k`. Its tiles are drawn when the observations reach position `k L - lag *
    draws_per_batch` (`publish`), from the table as it stands then, and kept until training has
    passed the window. The sampler, running ahead of training by the loader's prefetch, then
    reads tiles already fixed: the draws depend on the configuration and the observed losses
    only, never on thread timing. `lag` must exceed the prefetch depth (`items` raises if the
    sampler outruns the observations).

    **Ranks.** Every rank observes the same all-gathered losses and applies them in position
    order, so the tables, and the draws, are identical on all ranks.

    Args:
        num_items: number of tiles N.
        draws_per_batch: draws of one batch over all ranks (per-rank batch x ranks).
        seed: seed of the draws.
        floor: share of uniform draws, in [0, 1].
        momentum: EMA momentum of each tile's loss, in [0, 1).
        power: exponent on the loss (1: proportional; 0: uniform).
        refresh_every: batches per window.
        lag: batches between the last loss a window uses and its first draw.
    """

    def __init__(
        self,
        num_items: int,
        draws_per_batch: int,
        seed: int = 0,
        floor: float = 0.2,
        momentum: float = 0.9,
        power: float = 1.0,
        refresh_every: int = 20,
        lag: int = 12,
    ) -> None:
        if num_items < 1 or draws_per_batch < 1:
            raise ValueError(
                f"need num_items >= 1 and draws_per_batch >= 1, got {num_items}, {draws_per_batch}"
            )
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"data.sampling.floor={floor} must lie in [0, 1]")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"data.sampling.momentum={momentum} must lie in [0, 1)")
        if power < 0:
            raise ValueError(f"data.sampling.power={power} must be >= 0")
        if refresh_every < 1 or lag < 0:
            raise ValueError(f"need refresh_every >= 1 and lag >= 0, got {refresh_every}, {lag}")
        self.num_items = int(num_items)
        self.draws_per_batch = int(draws_per_batch)
        self.seed = int(seed)
        self.floor = float(floor)
        self.momentum = float(momentum)
        self.power = float(power)
        self.window = int(refresh_every) * self.draws_per_batch
        self.lag = int(lag) * self.draws_per_batch
        self.tracked = False  # set by the callback: windows then wait for the observations
        self.values = np.full(self.num_items, np.nan, dtype=np.float16)
        n_blocks = -(-self.num_items // _BLOCK)
        self._block_sum = np.zeros(n_blocks, dtype=np.float64)
        self._block_seen = np.zeros(n_blocks, dtype=np.int64)
        self.frontier = 0  # positions below it have been observed
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._windows: dict[int, np.ndarray] = {}
        self._next_window = 0
        self._publish_due()

    # ---- observing losses -------------------------------------------------------------------

    def observe(self, positions: np.ndarray, tiles: np.ndarray, losses: np.ndarray | None) -> None:
        """Record one batch over all ranks: global positions, tile ids and losses (or None).

        Call it for every batch, in order, with the same arrays on every rank; a batch without
        losses still moves the frontier so the windows keep being published.
        """
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if positions.size == 0:
            return
        if losses is not None:
            tiles = np.asarray(tiles, dtype=np.int64).reshape(-1)
            losses = np.asarray(losses, dtype=np.float64).reshape(-1)
            if not positions.size == tiles.size == losses.size:
                raise ValueError(
                    f"observe: {positions.size} positions, {tiles.size} tiles, {losses.size} losses"
                )
            keep = np.isfinite(losses) & (tiles >= 0) & (tiles < self.num_items)
            self._pending.append((positions[keep], tiles[keep], losses[keep]))
        self.frontier = max(self.frontier, int(positions.max()) + 1)
        self._publish_due()

    def _cutoff(self, window: int) -> int:
        """Observations below this position make up window `window`'s table."""
        return window * self.window - self.lag

    def _publish_due(self) -> None:
        while self._cutoff(self._next_window) <= self.frontier:
            self.publish(self._next_window)
        done = self.frontier // self.window  # windows wholly below the frontier are trained
        for k in [k for k in self._windows if k < done]:
            del self._windows[k]

    def publish(self, window: int) -> None:
        """Apply the observations below the window's cutoff, then draw the window's tiles."""
        cutoff = self._cutoff(window)
        self._apply([p < cutoff for p, _, _ in self._pending])
        self._windows[window] = self._draw_window(window)
        self._next_window = max(self._next_window, window + 1)

    def _apply(self, masks: list[np.ndarray]) -> None:
        taken = [(p[m], t[m], v[m]) for (p, t, v), m in zip(self._pending, masks, strict=True)]
        self._pending = [
            (p[~m], t[~m], v[~m]) for (p, t, v), m in zip(self._pending, masks, strict=True)
        ]
        self._pending = [entry for entry in self._pending if entry[0].size]
        if not taken:
            return
        positions, tiles, losses = (np.concatenate(x) for x in zip(*taken, strict=True))
        order = np.argsort(positions, kind="stable")  # rank-gather order does not matter
        tiles, losses = tiles[order], losses[order]
        touched = np.unique(tiles // _BLOCK)
        while tiles.size:  # a tile seen twice is updated twice, in position order
            _, first = np.unique(tiles, return_index=True)
            ids, loss = tiles[first], losses[first]
            old = self.values[ids].astype(np.float64)
            new = np.where(np.isnan(old), loss, self.momentum * old + (1 - self.momentum) * loss)
            self.values[ids] = np.clip(new, 0.0, _FLOAT16_MAX).astype(np.float16)
            rest = np.ones(tiles.size, dtype=bool)
            rest[first] = False
            tiles, losses = tiles[rest], losses[rest]
        self._refresh_blocks(touched)

    def _refresh_blocks(self, blocks: np.ndarray) -> None:
        for b in blocks.tolist():
            values = self.values[b * _BLOCK : (b + 1) * _BLOCK]
            seen = ~np.isnan(values)
            self._block_sum[b] = np.sum(self._weights(values[seen]))
            self._block_seen[b] = int(seen.sum())

    def _weights(self, values: np.ndarray) -> np.ndarray:
        v = values.astype(np.float64)
        return v if self.power == 1.0 else v**self.power

    # ---- drawing ----------------------------------------------------------------------------

    def _unseen_weight(self) -> float:
        seen = int(self._block_seen.sum())
        total = float(self._block_sum.sum())
        return total / seen if seen and total > 0 else 1.0

    def block_weights(self) -> np.ndarray:
        """Summed weight of each block, unseen tiles counted at the mean seen weight."""
        sizes = np.full(self._block_sum.size, _BLOCK, dtype=np.int64)
        sizes[-1] = self.num_items - _BLOCK * (sizes.size - 1)
        return self._block_sum + (sizes - self._block_seen) * self._unseen_weight()

    def tile_weights(self, block: int) -> np.ndarray:
        """Weight of each tile of one block (float64)."""
        values = self.values[block * _BLOCK : (block + 1) * _BLOCK]
        weights = self._weights(np.nan_to_num(values, nan=0.0))
        weights[np.isnan(values)] = self._unseen_weight()
        return weights

    def probabilities(self) -> np.ndarray:
        """Every tile's draw probability (O(N): for tests and small sets)."""
        blocks = np.concatenate([self.tile_weights(b) for b in range(self._block_sum.size)])
        total = blocks.sum()
        loss_part = blocks / total if total > 0 else np.full(self.num_items, 1 / self.num_items)
        return self.floor / self.num_items + (1 - self.floor) * loss_part

    def _draw_window(self, window: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, window])
        n = self.window
        uniform = rng.random(n) < self.floor
        items = rng.integers(0, self.num_items, n, dtype=np.int64)
        targets = rng.random(n)
        weighted = np.flatnonzero(~uniform)
        block_w = self.block_weights()
        cum = np.cumsum(block_w)
        if weighted.size and cum[-1] > 0:
            t = targets[weighted] * cum[-1]
            blocks = np.minimum(np.searchsorted(cum, t, side="right"), cum.size - 1)
            inside = t - (cum[blocks] - block_w[blocks])
            for b in np.unique(blocks).tolist():
                here = blocks == b
                c = np.cumsum(self.tile_weights(b))
                j = np.searchsorted(c, inside[here], side="right")
                items[weighted[here]] = b * _BLOCK + np.minimum(j, c.size - 1)
        return items

    def items(self, positions: np.ndarray) -> np.ndarray:
        """The tile drawn at each global position (int64 array in, int64 array out)."""
        positions = np.asarray(positions, dtype=np.int64)
        windows = positions // self.window
        out = np.empty_like(positions)
        for k in np.unique(windows).tolist():
            here = windows == k
            if k in self._windows:
                drawn = self._windows[k]
            elif not self.tracked:  # no trainer observes: the table is fixed, draw on demand
                drawn = self._draw_window(k)
            else:
                raise RuntimeError(
                    f"adaptive sampling: the loader asked for window {k} (positions from "
                    f"{k * self.window}) with the losses observed up to position "
                    f"{self.frontier}; windows drawn: {sorted(self._windows)}. Either the "
                    "loader prefetches more batches than data.sampling.lag (raise it above "
                    "num_workers * prefetch_factor + 2) or it went back over trained positions"
                )
            out[here] = drawn[positions[here] - k * self.window]
        return out

    # ---- checkpoint -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Table, frontier, unapplied observations and drawn windows (tensors and ints)."""
        pending = [np.concatenate(x) for x in zip(*self._pending, strict=True)] or [
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.float64),
        ]
        return {
            "num_items": self.num_items,
            "window": self.window,
            "values": torch.from_numpy(self.values.copy()),
            "frontier": self.frontier,
            "next_window": self._next_window,
            "pending": [torch.from_numpy(np.ascontiguousarray(x)) for x in pending],
            "windows": {k: torch.from_numpy(v.copy()) for k, v in self._windows.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; the block sums are recomputed from the table."""
        if state["num_items"] != self.num_items or state["window"] != self.window:
            raise ValueError(
                f"adaptive sampling state for {state['num_items']} tiles and windows of "
                f"{state['window']} draws does not fit {self.num_items} tiles and windows of "
                f"{self.window}: the tiles, batch size, devices or refresh_every changed"
            )
        self.values = state["values"].numpy().astype(np.float16, copy=True)
        self.frontier = int(state["frontier"])
        self._next_window = int(state["next_window"])
        positions, tiles, losses = (t.numpy().copy() for t in state["pending"])
        self._pending = [(positions, tiles, losses)] if positions.size else []
        self._windows = {int(k): v.numpy().copy() for k, v in state["windows"].items()}
        self._refresh_blocks(np.arange(self._block_sum.size))
