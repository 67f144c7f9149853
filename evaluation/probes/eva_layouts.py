"""On-disk layouts of eva's public patch datasets (BACH, CRC, MHIST, PCam) as labelled samples."""

# Each reader mirrors the dataset class in kaiko-ai/eva src/eva/vision/data/datasets/classification/
# (read from its source): file locations, class names/order and the train/val/test assignment.

import csv
from collections.abc import Callable
from pathlib import Path

import h5py

from evaluation.probes.data import ProbeInputError
from evaluation.probes.sources import ImageSample

BACH_CLASSES = ["Benign", "InSitu", "Invasive", "Normal"]
# eva bach.py: patient-aware index ranges over the 400 photos listed class by class, file-sorted.
BACH_TRAIN = [(0, 41), (59, 60), (90, 139), (169, 240), (258, 260), (273, 345), (368, 400)]
BACH_VAL = [(41, 59), (60, 90), (139, 169), (240, 258), (260, 273), (345, 368)]
CRC_CLASSES = ["ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]
MHIST_CLASSES = ["SSA", "HP"]
PCAM_CLASSES = ["no_tumor", "tumor"]


def _class_folder(directory: Path, classes: list[str], suffix: str) -> list[tuple[Path, str]]:
    """torchvision ``folder.make_dataset`` order: classes sorted, files walked and sorted."""
    out = []
    for cls in sorted(classes):
        folder = directory / cls
        if not folder.is_dir():
            raise ProbeInputError(
                f"{folder}: missing class folder; expected {classes} under {directory}"
            )
        out += [
            (p, cls)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name.lower().endswith(suffix)
        ]
    return out


def bach_samples(root: str | Path) -> tuple[list[ImageSample], list[str]]:
    """BACH: ``<root>/ICIAR2018_BACH_Challenge/Photos/<class>/*.tif``, eva's train/val index ranges."""
    photos = Path(root) / "ICIAR2018_BACH_Challenge" / "Photos"
    files = _class_folder(photos, BACH_CLASSES, ".tif")
    if len(files) != 400:
        raise ProbeInputError(
            f"{photos}: eva's BACH split needs the 400 challenge photos, found {len(files)}"
        )
    split = {}
    for name, ranges in (("train", BACH_TRAIN), ("val", BACH_VAL)):
        for lo, hi in ranges:
            split.update(dict.fromkeys(range(lo, hi), name))
    return [ImageSample(p, c, split[i]) for i, (p, c) in enumerate(files)], BACH_CLASSES


def crc_samples(root: str | Path) -> tuple[list[ImageSample], list[str]]:
    """CRC: ``NCT-CRC-HE-100K/<class>/*.tif`` (train) and ``CRC-VAL-HE-7K/<class>/*.tif`` (val)."""
    root = Path(root)
    samples = []
    for folder, split in (("NCT-CRC-HE-100K", "train"), ("CRC-VAL-HE-7K", "val")):
        samples += [
            ImageSample(p, c, split) for p, c in _class_folder(root / folder, CRC_CLASSES, ".tif")
        ]
    return samples, CRC_CLASSES


def mhist_samples(root: str | Path) -> tuple[list[ImageSample], list[str]]:
    """MHIST: ``annotations.csv`` (Image Name, Majority Vote Label, Partition) + ``images/``."""
    root = Path(root)
    ann = root / "annotations.csv"
    if not ann.is_file():
        raise ProbeInputError(
            f"{ann}: missing; MHIST needs annotations.csv and images/ under {root}"
        )
    with ann.open(newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"Image Name", "Majority Vote Label", "Partition"}
    if not rows or not needed <= set(rows[0]):
        raise ProbeInputError(f"{ann}: needs columns {sorted(needed)}")
    samples = [
        ImageSample(root / "images" / r["Image Name"], r["Majority Vote Label"], r["Partition"])
        for r in rows
        if r["Partition"] in ("train", "test")
    ]
    return samples, MHIST_CLASSES


def pcam_samples(root: str | Path) -> tuple[list[ImageSample], list[str]]:
    """PCam: ``camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5`` with datasets ``x``/``y``."""
    root = Path(root)
    samples = []
    for split, tag in (("train", "train"), ("val", "valid"), ("test", "test")):
        x_path = root / f"camelyonpatch_level_2_split_{tag}_x.h5"
        y_path = root / f"camelyonpatch_level_2_split_{tag}_y.h5"
        if not x_path.is_file() or not y_path.is_file():
            raise ProbeInputError(
                f"{root}: missing {x_path.name} or {y_path.name} (uncompressed PCam HDF5 files)"
            )
        with h5py.File(y_path, "r") as f:
            labels = f["y"][:].reshape(-1)
        samples += [
            ImageSample(x_path, PCAM_CLASSES[int(v)], split, index=i) for i, v in enumerate(labels)
        ]
    return samples, PCAM_CLASSES


EVA_LAYOUTS: dict[str, Callable[[str | Path], tuple[list[ImageSample], list[str]]]] = {
    "bach": bach_samples,
    "crc": crc_samples,
    "mhist": mhist_samples,
    "pcam": pcam_samples,
}
