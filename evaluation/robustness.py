"""PLISM-like robustness without PLISM: one tile grid rendered under simulated stain x scanner conditions."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation.encoder import embed_images
from evaluation.plism import DEFAULT_TOP_K, PlismResult, evaluate_slides, usable_top_k

if TYPE_CHECKING:
    from vitkd.data.augment import ConditionSimulator
    from vitkd.models import Backbone


@dataclass
class TileSet:
    """Registered source tiles: images (N, H, W, 3) uint8, their slide and level-0 coords."""

    images: np.ndarray
    slides: list[str]
    coords: np.ndarray


def sample_tiles(
    slide_paths: Sequence[str | Path],
    mpp: float = 0.5,
    size: int = 224,
    max_tiles: int = 64,
    min_tissue: float = 0.5,
    seed: int = 0,
) -> TileSet:
    """Up to `max_tiles` tissue tiles in total, spread evenly over the slides (random, seeded, sorted)."""
    from slides import make_grid, open_slide

    if not slide_paths:
        raise ValueError("no slides given")
    per_slide = max(1, max_tiles // len(slide_paths))
    rng = np.random.default_rng(seed)
    images, names, coords = [], [], []
    bar = tqdm(slide_paths, desc="reading tiles", unit="slide")
    for path in bar:
        with open_slide(path) as slide:
            bar.set_postfix_str(slide.name)
            grid = make_grid(slide, mpp=mpp, size=size, min_tissue=min_tissue)
            if len(grid) == 0:
                continue
            pick = np.sort(rng.choice(len(grid), size=min(per_slide, len(grid)), replace=False))
            for i in pick:
                images.append(grid.read_tile(slide, int(i)))
                names.append(slide.name)
                coords.append(grid.coords[i])
    bar.close()
    if not images:
        raise ValueError(
            f"no tissue tiles found in {[str(p) for p in slide_paths]} at mpp={mpp}, size={size}; lower --min-tissue"
        )
    return TileSet(np.stack(images), names, np.asarray(coords, dtype=np.int64))


def condition_label(stain: str, scanner: str) -> str:
    """Name of a simulated slide, ``<stain>_<scanner>`` like PLISM's ``<staining>_<scanner>``."""
    return f"{stain}_{scanner}"


def embed_conditions(
    tiles: TileSet,
    simulator: "ConditionSimulator",
    models: Mapping[str, "Backbone"],
    batch_size: int = 32,
    tokens: str = "cls",
    device: str = "cpu",
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, tuple[str, str]]]:
    """Features[model][condition] (N, D) of every tile under every condition, simulated once per condition."""
    feats: dict[str, dict[str, np.ndarray]] = {m: {} for m in models}
    conds: dict[str, tuple[str, str]] = {}
    # One bar over (condition, model) with a postfix; per-batch bars nested inside it gave a
    # user 48 bars for 24 conditions x 2 models.
    bar = tqdm(total=len(simulator.conditions) * len(models), desc="embedding", unit="set")
    for cond in simulator.conditions:
        name = condition_label(cond.stain.name, cond.scanner.name)
        conds[name] = (cond.stain.name, cond.scanner.name)
        rendered = [simulator.simulate(t, cond.id) for t in tiles.images]
        for m, backbone in models.items():
            bar.set_postfix_str(f"{name} · {m}")
            feats[m][name] = embed_images(
                backbone, rendered, batch_size, tokens, device, progress=False
            )
            bar.update(1)
    bar.close()
    return feats, conds


def robustness_results(
    feats: Mapping[str, Mapping[str, np.ndarray]],
    conds: Mapping[str, tuple[str, str]],
    top_k: Sequence[int] = DEFAULT_TOP_K,
    dtype: torch.dtype = torch.float32,
) -> dict[str, PlismResult]:
    """PLISM metrics per model over all pairs of simulated conditions (k capped at 2n - 1)."""
    out = {}
    n_pairs = {m: len(c) * (len(c) - 1) // 2 for m, c in feats.items()}
    bar = tqdm(total=sum(n_pairs.values()), desc="PLISM pairs", unit="pair")
    for model, per_cond in feats.items():
        n = len(next(iter(per_cond.values())))
        ks, _ = usable_top_k(top_k, n)  # the result's leaderboard_note says what is missing
        bar.set_postfix_str(model)
        out[model] = evaluate_slides(
            per_cond, conds, ks, dtype=dtype, progress=False, on_pair=lambda _: bar.update(1)
        )
    bar.close()
    return out


def projection_sample(
    feats: Mapping[str, Mapping[str, np.ndarray]],
    conds: Mapping[str, tuple[str, str]],
    max_tiles: int = 64,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Arrays for the report's 2-D projection: per model ``<model>_features`` (rows = tile x
    condition) plus ``condition``/``stain``/``scanner``/``tile`` labels of up to `max_tiles`
    tiles (random, seeded)."""
    models = list(feats)
    names = list(feats[models[0]])
    n = len(feats[models[0]][names[0]])
    tiles = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max_tiles), replace=False))
    out: dict[str, np.ndarray] = {
        "condition": np.repeat(np.array(names), len(tiles)),
        "stain": np.repeat(np.array([conds[c][0] for c in names]), len(tiles)),
        "scanner": np.repeat(np.array([conds[c][1] for c in names]), len(tiles)),
        "tile": np.tile(tiles, len(names)),
    }
    for m in models:
        out[f"{m}_features"] = np.concatenate([feats[m][c][tiles] for c in names]).astype(
            np.float32
        )
    return out
