"""Load embedding matrices from vitkd/TRIDENT HDF5, `.npy` or `.pt` files."""

from pathlib import Path

import h5py
import numpy as np
import torch


class EmbeddingFileError(ValueError):
    """An embedding file is missing or not in a supported format."""


def load_array(path: str | Path) -> np.ndarray:
    """(N, D) float32 embeddings from `.h5` (``features``), `.npy` or `.pt` (a tensor or a dict with ``features``/``embeddings``)."""
    path = Path(path)
    if not path.is_file():
        raise EmbeddingFileError(f"{path}: no such embedding file")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        with h5py.File(path, "r") as f:
            key = next((k for k in ("features", "embeddings") if k in f), None)
            if key is None:
                raise EmbeddingFileError(
                    f"{path}: needs a 'features' (vitkd/TRIDENT) or 'embeddings' (HEST) dataset"
                )
            arr = np.asarray(f[key][:])
    elif suffix == ".npy":
        arr = np.load(path)
    elif suffix == ".pt":
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            key = next((k for k in ("features", "embeddings") if k in obj), None)
            if key is None:
                raise EmbeddingFileError(
                    f"{path}: a dict .pt needs a 'features' or 'embeddings' entry, has {sorted(obj)}"
                )
            obj = obj[key]
        if not isinstance(obj, torch.Tensor):
            raise EmbeddingFileError(f"{path}: expected a tensor, got {type(obj).__name__}")
        arr = obj.float().numpy()
    else:
        raise EmbeddingFileError(
            f"{path}: unsupported embedding file type {suffix!r}; use .h5, .npy or .pt"
        )
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise EmbeddingFileError(f"{path}: embeddings must be (N, D), got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


def load_coords(path: str | Path) -> np.ndarray | None:
    """(N, 2) int64 ``coords`` of an HDF5 embedding file, or None when it has none."""
    path = Path(path)
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return None
    with h5py.File(path, "r") as f:
        return np.asarray(f["coords"][:], dtype=np.int64) if "coords" in f else None
