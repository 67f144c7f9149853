"""One cache shard: an HDF5 file of encoded tiles and each teacher's fp16 CLS and sampled tokens.

Layout (`n` tiles, teacher `key` with width `D` and `P` cached patch tokens):

- `images` (n,) variable-length uint8: the JPEG/PNG bytes of each tile as the teachers saw it.
- `tile` (n,) int64 global tile id; `slide` (n,) int32 position in the manifest's slides;
  `coords` (n, 2) int64 level-0 top-left (x, y) (TRIDENT's convention).
- `teachers/<key>/cls` (n, D) fp16, `teachers/<key>/patches` (n, P, D) fp16 and
  `teachers/<key>/index` (n, P) uint16/uint32 flat row-major indices of those tokens on the
  teacher's grid of the whole cached image.
- attrs: `format`, `first` (global id of tile 0), `n_tiles`, `complete` (set just before the
  rename, so a file under its final name is always whole).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from slides.atomic import fsync_replace
from vitkd.cache.errors import CacheError
from vitkd.cache.manifest import FORMAT
from vitkd.embed.writer import tmp_path_for

_BYTES = h5py.vlen_dtype(np.dtype(np.uint8))


@dataclass(frozen=True)
class TeacherLayout:
    """Shapes of one teacher's datasets in a shard."""

    key: str
    dim: int
    tokens: int
    index_dtype: np.dtype


@dataclass
class TileTargets:
    """One teacher's cached targets of one tile: fp16 CLS (D,), patches (P, D), int64 index (P,)."""

    cls: np.ndarray
    patches: np.ndarray
    index: np.ndarray


class ShardWriter:
    """Writes one shard under `<name>.tmp`; `commit()` renames it into place (atomic).

    Leaving the context without `commit()` deletes the temporary file: a killed or failed
    build never leaves a partial shard under its final name. The caller holds the shard's lock.
    """

    def __init__(self, path: Path, first: int, n: int, teachers: list[TeacherLayout]) -> None:
        self.path = Path(path)
        self.tmp_path = tmp_path_for(self.path)
        self.n = n
        self.written = 0
        self.teachers = teachers
        for t in teachers:
            if "/" in t.key:
                raise CacheError(f"teacher key {t.key!r} contains '/'; choose another key")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: h5py.File | None = h5py.File(self.tmp_path, "w")
        try:
            f = self._file
            f.attrs.update({"format": FORMAT, "first": first, "n_tiles": n, "complete": False})
            f.create_dataset("images", shape=(n,), dtype=_BYTES)
            f.create_dataset("tile", shape=(n,), dtype=np.int64)
            f.create_dataset("slide", shape=(n,), dtype=np.int32)
            f.create_dataset("coords", shape=(n, 2), dtype=np.int64)
            for t in teachers:
                g = f.create_group(f"teachers/{t.key}")
                g.create_dataset("cls", shape=(n, t.dim), dtype=np.float16)
                g.create_dataset("patches", shape=(n, t.tokens, t.dim), dtype=np.float16)
                g.create_dataset("index", shape=(n, t.tokens), dtype=t.index_dtype)
        except BaseException:
            self.abort()
            raise

    def write(
        self,
        images: list[bytes],
        tiles: np.ndarray,
        slide: np.ndarray,
        coords: np.ndarray,
        targets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    ) -> None:
        """Append a batch: encoded images, ids, and per teacher (cls, patches, index) arrays."""
        f = self._file
        if f is None:
            raise RuntimeError(f"{self.path}: writer already closed")
        start, end = self.written, self.written + len(images)
        if end > self.n:
            raise ValueError(f"{self.path}: {end} tiles written for {self.n}")
        dset = f["images"]
        for i, data in enumerate(images):
            dset[start + i] = np.frombuffer(data, np.uint8)
        f["tile"][start:end] = tiles
        f["slide"][start:end] = slide
        f["coords"][start:end] = coords
        for t in self.teachers:
            cls, patches, index = targets[t.key]
            g = f[f"teachers/{t.key}"]
            g["cls"][start:end] = cls.astype(np.float16)
            g["patches"][start:end] = patches.astype(np.float16)
            g["index"][start:end] = index.astype(t.index_dtype)
        self.written = end

    def commit(self) -> Path:
        """Mark complete, close, fsync and rename onto the final name."""
        if self._file is None:
            raise RuntimeError(f"{self.path}: writer already closed")
        if self.written != self.n:
            raise ValueError(f"{self.path}: {self.written} tiles written for {self.n}")
        self._file.attrs["complete"] = True
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

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self.abort()


def _unreadable(path: Path, why: str) -> CacheError:
    return CacheError(
        f"{path}: cache shard {why}; move it away and run python -m vitkd.cache again with the "
        "same options to rebuild it (the other shards are kept)"
    )


class ShardReader:
    """Random access to one finished shard; the file is opened on first use (per process)."""

    def __init__(self, path: Path, first: int, n: int, keys: list[str]) -> None:
        self.path = Path(path)
        self.first, self.n, self.keys = first, n, keys
        self._file: h5py.File | None = None
        self._pid = os.getpid()

    def check(self) -> None:
        """Open the shard and check its header against the manifest (cheap: attributes only)."""
        if not self.path.is_file():
            raise CacheError(
                f"{self.path}: cache shard missing; run python -m vitkd.cache again with the "
                "same options to finish the cache (finished shards are skipped)"
            )
        f = self.file()
        attrs = dict(f.attrs)
        if attrs.get("format") != FORMAT or not attrs.get("complete"):
            raise _unreadable(self.path, "is not a complete vitkd cache shard")
        if int(attrs.get("first", -1)) != self.first or int(attrs.get("n_tiles", -1)) != self.n:
            raise _unreadable(
                self.path,
                f"holds tiles {attrs.get('first')}+{attrs.get('n_tiles')}, the manifest expects "
                f"{self.first}+{self.n}",
            )
        missing = [k for k in self.keys if f"teachers/{k}" not in f]
        if missing:
            raise _unreadable(self.path, f"has no targets of teacher(s) {missing}")

    def file(self) -> h5py.File:
        """The open HDF5 file (this process's own: a handle inherited through a fork is dropped,
        HDF5 handles are not shared between processes)."""
        if self._file is not None and self._pid != os.getpid():
            self._file = None
        if self._file is None:
            self._pid = os.getpid()
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as err:
                raise _unreadable(self.path, f"cannot be read as HDF5 ({err})") from err
        return self._file

    def read(self, i: int, keys: list[str] | None = None) -> tuple[bytes, dict[str, TileTargets]]:
        """Encoded image and each teacher's targets of local tile `i`."""
        f = self.file()
        try:
            image = f["images"][i].tobytes()
            targets = {}
            for key in keys or self.keys:
                g = f[f"teachers/{key}"]
                targets[key] = TileTargets(
                    g["cls"][i], g["patches"][i], g["index"][i].astype(np.int64)
                )
        except (OSError, KeyError, ValueError) as err:
            raise _unreadable(self.path, f"tile {i} cannot be read ({err})") from err
        return image, targets

    def meta(self, i: int) -> tuple[int, int, np.ndarray]:
        """(global tile id, slide position, level-0 coords) of local tile `i`."""
        f = self.file()
        return int(f["tile"][i]), int(f["slide"][i]), f["coords"][i]

    def close(self) -> None:
        """Close the file (reopened on the next read)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # h5py handles do not cross processes
        return state
