"""Reader for PathoROB's released feature layout: one .npz per medical centre, keyed by slide_id-patch_id."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def pathorob_chunk_name(centre: str) -> str:
    """File of one centre's features (PathoROB `FeatureDataManager`: spaces become underscores)."""
    return f"{str(centre).replace(' ', '_')}.npz"


def read_pathorob_features(
    dataset_dir: str | Path, slide: Sequence, patch: Sequence, centre: Sequence
) -> np.ndarray:
    """(n, d) float32 features in manifest order from ``<features_dir>/<model>/<dataset>/``.

    PathoROB (`pathorob/features/data_manager.py`, commit 06b5eba) saves each medical
    centre's features as ``<centre>.npz`` whose keys are ``f"{slide_id}-{patch_id}"``; its
    metadata CSVs (``data/metadata/*.csv``) carry ``slide_id``, ``patch_id``,
    ``biological_class``, ``medical_center`` and ``subset``.

    Raises:
        FileNotFoundError: the folder or a centre's file is missing.
        ValueError: a slide_id-patch_id key is missing from its centre's file.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no PathoROB features folder")
    ids = [f"{s}-{p}" for s, p in zip(slide, patch, strict=True)]
    centre = np.asarray(centre, dtype=object)
    rows: list[np.ndarray | None] = [None] * len(ids)
    for c in np.unique(centre.astype(str)):
        path = root / pathorob_chunk_name(c)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no features for centre {c!r}")
        with np.load(path) as chunk:
            for i in np.flatnonzero(centre.astype(str) == c):
                if ids[i] not in chunk.files:
                    raise ValueError(f"{path}: no features for {ids[i]!r} (slide_id-patch_id)")
                rows[i] = chunk[ids[i]]
    return np.stack(rows).astype(np.float32, copy=False)
