"""Labelled image samples from a `split/class/image` tile folder, and reading them as uint8 RGB."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from evaluation.probes.data import ProbeInputError
from evaluation.probes.inputs import normalise_split
from slides.paths import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ImageSample:
    """One labelled image: a file, or row `index` of an HDF5 dataset ``x`` (PCam)."""

    path: Path
    label: str
    split: str
    index: int | None = None


def read_sample(sample: ImageSample) -> np.ndarray:
    """The sample as (H, W, 3) uint8 RGB."""
    if sample.index is not None:
        with h5py.File(sample.path, "r") as f:
            return np.asarray(f["x"][sample.index], dtype=np.uint8)
    from slides.image_io import read_image

    return read_image(sample.path)


def iter_images(samples: Sequence[ImageSample]) -> Iterator[np.ndarray]:
    """Read samples in order, keeping one PCam HDF5 file open at a time."""
    handle: h5py.File | None = None
    try:
        for s in samples:
            if s.index is None:
                yield read_sample(s)
                continue
            if handle is None or Path(handle.filename) != s.path:
                if handle is not None:
                    handle.close()
                handle = h5py.File(s.path, "r")
            yield np.asarray(handle["x"][s.index], dtype=np.uint8)
    finally:
        if handle is not None:
            handle.close()


def tile_folder_samples(root: str | Path) -> list[ImageSample]:
    """Samples of a ``<root>/<split>/<class>/<image>`` folder (split: train, val|valid, test)."""
    root = Path(root)
    if not root.is_dir():
        raise ProbeInputError(f"{root}: no such tile folder")
    samples = []
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        split = normalise_split(split_dir.name, f"{root}: folder {split_dir.name!r}")
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for img in sorted(class_dir.rglob("*")):
                if img.suffix.lower() in IMAGE_EXTENSIONS:
                    samples.append(ImageSample(img, class_dir.name, split))
    if not samples:
        raise ProbeInputError(
            f"{root}: no images found; lay the folder out as split/class/image (split = train, val, test)"
        )
    return samples


def labeled_folder_samples(root: str | Path) -> list[ImageSample]:
    """Samples of a labelled folder in either layout benchmarks take from users:
    ``<root>/{train,val,test}/<class>/<image>`` (splits kept) or ``<root>/<class>/<image>``
    (every sample gets split ``all``; score it by leave-one-out)."""
    root = Path(root)
    if not root.is_dir():
        raise ProbeInputError(f"{root}: no such labelled folder")
    subdirs = [p for p in root.iterdir() if p.is_dir()]
    splits = {"train", "val", "valid", "test"}
    if subdirs and all(p.name.lower() in splits for p in subdirs):
        return tile_folder_samples(root)
    samples = [
        ImageSample(img, class_dir.name, "all")
        for class_dir in sorted(subdirs)
        for img in sorted(class_dir.rglob("*"))
        if img.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if len({s.label for s in samples}) < 2:
        raise ProbeInputError(
            f"{root}: need images of at least two classes, laid out as <class>/<image> or "
            "<split>/<class>/<image>"
        )
    return samples
