"""Synthetic multi-centre embeddings for the robustness-metric tests: class and centre both leave a signal."""

import numpy as np


def cohort(
    classes: int = 3,
    centres: int = 3,
    slides_per_cell: int = 2,
    tiles_per_slide: int = 12,
    dim: int = 16,
    centre_strength: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Tiles of slides, each slide one (class, centre) cell: embedding = class + centre + slide + noise."""
    rng = np.random.default_rng(seed)
    class_dirs = rng.normal(size=(classes, dim))
    centre_dirs = rng.normal(size=(centres, dim)) * centre_strength
    rows, bio, cen, sl = [], [], [], []
    for b in range(classes):
        for c in range(centres):
            for s in range(slides_per_cell):
                offset = rng.normal(size=dim) * 0.3
                x = (
                    class_dirs[b]
                    + centre_dirs[c]
                    + offset
                    + rng.normal(size=(tiles_per_slide, dim))
                )
                rows.append(x)
                bio += [f"class{b}"] * tiles_per_slide
                cen += [f"centre{c}"] * tiles_per_slide
                sl += [f"slide{b}-{c}-{s}"] * tiles_per_slide
    return {
        "x": np.vstack(rows).astype(np.float32),
        "biology": np.array(bio),
        "centre": np.array(cen),
        "slide": np.array(sl),
    }
