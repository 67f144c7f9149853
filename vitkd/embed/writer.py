"""TRIDENT-compatible per-slide embedding HDF5, written to a temporary name and renamed when complete."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from slides.atomic import fsync_replace

TMP_SUFFIX = ".tmp"


def tmp_path_for(path: Path) -> Path:
    """The temporary name a slide's file is written under until it is complete.

    Unlike `slides.atomic.temp_sibling` the name is fixed: the slide's lock file already keeps
    writers apart, and a fixed name lets a resumed run overwrite what a killed one left.
    """
    return path.with_name(path.name + TMP_SUFFIX)


class EmbeddingWriter:
    """Writes `features` (N, *feature_shape) float32 and `coords` (N, 2) int64 for one slide.

    The file lives at `<path>.tmp` until `commit()`, which closes it, fsyncs it and renames it
    onto `path` with `os.replace`; leaving the context without `commit()` deletes the temporary
    file, so a killed or failed run never leaves a half-written `<name>.h5` behind.

    Args:
        path: final file, `<out>/<slide name>.h5`.
        coords: level-0 top-left (x, y) of every tile, in the order features will be written.
        feature_shape: shape of one tile's features, e.g. (D,) or (n_patches, D).
        coords_attrs: TRIDENT attributes stored on `coords`.
        features_attrs: provenance attributes stored on `features`.
        extra: more per-tile datasets to store as given (object arrays are stored as strings).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        coords: np.ndarray,
        feature_shape: tuple[int, ...],
        coords_attrs: Mapping[str, Any],
        features_attrs: Mapping[str, Any],
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        self.path = Path(path)
        self.tmp_path = tmp_path_for(self.path)
        self.n = len(coords)
        self.written = 0
        self.tmp_path.parent.mkdir(parents=True, exist_ok=True)
        self._file: h5py.File | None = h5py.File(self.tmp_path, "w")
        try:
            dset = self._file.create_dataset("coords", data=coords)
            _set_attrs(dset, coords_attrs)
            self._features = self._file.create_dataset(
                "features", shape=(self.n, *feature_shape), dtype=np.float32
            )
            _set_attrs(self._features, features_attrs)
            for name, values in (extra or {}).items():
                values = np.asarray(values)
                if values.dtype.kind in "OUS":
                    values = values.astype(object).astype(h5py.string_dtype())
                self._file.create_dataset(name, data=values)
        except BaseException:
            self.abort()
            raise

    def write(self, features: np.ndarray) -> None:
        """Append the next batch of features (B, *feature_shape), in coords order."""
        end = self.written + len(features)
        if end > self.n:
            raise ValueError(f"{self.path}: {end} feature rows written for {self.n} coords")
        self._features[self.written : end] = features
        self.written = end

    def commit(self) -> Path:
        """Close, fsync and atomically rename the finished file onto its final name."""
        if self._file is None:
            raise RuntimeError(f"{self.path}: writer already closed")
        if self.written != self.n:
            raise ValueError(
                f"{self.path}: {self.written} feature rows written for {self.n} coords"
            )
        self._file.close()
        self._file = None
        try:
            return fsync_replace(self.tmp_path, self.path)
        except BaseException:
            self.tmp_path.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        """Close and delete the temporary file; the final name is never touched."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self.abort()


def _set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        obj.attrs[key] = value


def read_attrs(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Attributes of `features` and `coords` of a finished embedding file (for resume checks)."""
    with h5py.File(path, "r") as f:
        return {name: dict(f[name].attrs) for name in ("features", "coords") if name in f}
