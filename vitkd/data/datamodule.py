"""`DistillDataModule`: tissue tiles from slides or a tile folder, DINOv2 multi-crop, iBOT masks."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

import slides
from vitkd.data.adaptive import SamplingConfig, train_sampler
from vitkd.data.collate import MaskConfig, MultiCropCollate
from vitkd.data.coords_files import match_coords, missing_coords_message, read_coords_count
from vitkd.data.curriculum import CropCurriculum, bind_curriculum
from vitkd.data.holdout import holdout_indices, split_holdout
from vitkd.data.multicrop import MultiCrop
from vitkd.data.multicrop_dataset import MultiCropDataset
from vitkd.data.rank_agreement import FAILED, agree_on_counts, world
from vitkd.data.sampler import StepResumedLoader
from vitkd.data.slide_tiles import IndexTiles, SlideTileReader
from vitkd.data.tile_index import TileIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropConfig:
    """DINOv2 multi-crop and the stain/scanner augmentation applied to each crop.

    Args:
        global_size: side of the global crops (teacher and student).
        local_size: side of the local crops (student only).
        n_global: number of global crops.
        n_local: number of local crops.
        global_scale: RandomResizedCrop area range of the global crops.
        local_scale: RandomResizedCrop area range of the local crops.
        augment: augmentation preset: `none`, `light`, `dinov2` or `pathology`.
        teacher_view: what the teacher sees of each global crop: `same` (the student's augmented
            view, DINOv2), `light` (lightly augmented) or `clean` (no colour augmentation).
    """

    global_size: int = 224
    local_size: int = 98
    n_global: int = 2
    n_local: int = 8
    global_scale: tuple[float, float] = (0.32, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.32)
    augment: Literal["none", "light", "dinov2", "pathology"] = "pathology"
    teacher_view: Literal["same", "light", "clean"] = "light"


@dataclass(frozen=True)
class TileSource:
    """Where tiles come from, and at which resolution.

    Args:
        slides: slide files, folders or CSV files of paths (`samples`: the slides shipped with
            vitkd); `None` and no `tiles`: the sample slide.
            With `coords`: the slides the coords files were made from.
        coords: a folder of precomputed coords files, so tiling happens once, before training:
            `python -m slides tile SLIDES --out DIR` (`DIR/<slide>.h5`) or a TRIDENT patch job
            (`DIR/patches/<slide>_patches.h5`). Each file is matched to the slide of the same
            file stem in `slides`; a slide without one is an error (skipped with
            `skip_errors`). The files must be for `tile_size` (and `mpp`, where recorded).
        tiles: a folder of tile images instead of slides.
        mpp: target resolution in micrometres per pixel.
        tile_size: side of the tiles read from the slides.
        overlap: pixels shared by neighbouring grid tiles (more, overlapping tiles from few
            slides).
        min_tissue: minimum tissue fraction of a tile.
        slide_mpp: override for slides whose files carry no resolution.
        holdout_fraction: share of grid tiles held out of training (fidelity is measured there).
        holdout_max_tiles: cap on the held-out tiles over all slides, which are spread over the
            slides in proportion to their tiles.
        skip_errors: log and skip unreadable slides instead of stopping. Under DDP a slide
            that failed on any rank is left out on every rank, so all ranks see the same tiles.
        domains: keep only the slides of these domains (organ, site or scanner): every
            `slides` entry must then be a CSV with a `domain` column (`slides.select_domains`).
        cache: a teacher-feature cache folder (`python -m vitkd.cache`): tiles and the
            teachers' targets are read from it and the cached teachers do not run. Its global
            crops are grid-aligned, mirrored and turned (`vitkd.cache.collate`); the slide
            options above are the cache's and are not used.
    """

    slides: list[str] | None = None
    coords: str | None = None
    tiles: str | None = None
    mpp: float = 0.5
    tile_size: int = 224
    overlap: int = 0
    min_tissue: float = 0.5
    slide_mpp: float | None = None
    holdout_fraction: float = 0.1
    holdout_max_tiles: int = 256
    skip_errors: bool = False
    domains: list[str] | None = None
    cache: str | None = None


# the CLI shows them as the complete default configuration; frozen, and deep-copied by each
# data module (`TileSource.slides` is a list), so no instance can change them for the next
DEFAULT_SOURCE = TileSource()
DEFAULT_CROPS = CropConfig()
DEFAULT_MASKING = MaskConfig()
DEFAULT_SAMPLING = SamplingConfig()
DEFAULT_CURRICULUM = CropCurriculum()


__all__ = ["CropConfig", "DistillDataModule", "TileSource", "split_holdout"]


class DistillDataModule(L.LightningDataModule):
    """Random tissue tiles -> multi-crop batches (uint8, view-major) with iBOT masks.

    Args:
        source: slides or tile folder, resolution and hold-out split.
        crops: multi-crop geometry and augmentation.
        masking: iBOT block masks.
        batch_size: images per device and step (each image gives all its crops).
        samples_per_epoch: draws per epoch over all devices (`None`: one pass over the tiles).
        num_workers: DataLoader worker processes.
        pin_memory: pin host memory (`auto`: when CUDA is available).
        persistent_workers: keep workers alive between epochs.
        prefetch_factor: batches prepared ahead per worker.
        seed: seed of the tile order, the augmentation and the masks.
        augment_device: where crops are cut and coloured: `cpu` (workers, every operation),
            `gpu` (workers only decode tiles and draw parameters; `vitkd.data.gpu` does the
            pixel work on the training device after the copy; no JPEG operation), or `auto`
            (`gpu` when the trainer runs on CUDA). The default stays `cpu` (the full preset)
            until `scripts/gpu_check.sh` has measured the device path on a real GPU.
        sampling: how tiles are drawn: `uniform` (default) or `adaptive` (more often where the
            student disagrees with the teacher; `vitkd.data.adaptive`).
        curriculum: crop scales and augmentation strength as schedules of the step
            (`vitkd.data.curriculum`; CPU augmentation only).
    """

    def __init__(
        self,
        source: TileSource = DEFAULT_SOURCE,
        crops: CropConfig = DEFAULT_CROPS,
        masking: MaskConfig = DEFAULT_MASKING,
        batch_size: int = 32,
        samples_per_epoch: int | None = None,
        num_workers: int = 2,
        pin_memory: Literal["auto", "on", "off"] = "auto",
        persistent_workers: bool = True,
        prefetch_factor: int = 4,
        seed: int = 0,
        augment_device: Literal["auto", "cpu", "gpu"] = "cpu",
        sampling: SamplingConfig = DEFAULT_SAMPLING,
        curriculum: CropCurriculum = DEFAULT_CURRICULUM,
    ) -> None:
        super().__init__()
        self.source = copy.deepcopy(source) if source is not None else TileSource()
        self.crops = copy.deepcopy(crops) if crops is not None else CropConfig()
        self.masking = copy.deepcopy(masking) if masking is not None else MaskConfig()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self.seed = seed
        self.augment_device = augment_device
        self.sampling = copy.deepcopy(sampling) if sampling is not None else SamplingConfig()
        self.curriculum = copy.deepcopy(curriculum) if curriculum is not None else CropCurriculum()
        self._device_crop = None
        self.train_tiles: Dataset | None = None
        self.holdout_tiles: Dataset | None = None
        self.tile_index: TileIndex | None = None

    def slide_paths(self) -> list[Path]:
        """The slides to tile: the configured ones, or the shipped sample slide."""
        if self.source.domains is not None:
            return slides.select_domains(self.source.slides or [], self.source.domains)
        if self.source.slides is None:
            if self.source.coords is not None:
                raise ValueError(
                    f"data.source.coords={self.source.coords} needs data.source.slides: the "
                    "slide files (or folders, or CSVs) the coords files were made from, matched "
                    "by file stem"
                )
            return [Path(slides.SAMPLE_SLIDE)]
        if not self.source.slides:
            raise ValueError(
                "data.source.slides is an empty list: give slide files, folders or a CSV of "
                "paths, or leave it unset to use the sample slide"
            )
        paths: list[Path] = []
        for entry in self.source.slides:
            if entry == slides.SAMPLES:
                paths.extend(slides.SAMPLE_SLIDES)
            else:
                paths.extend(slides.find_slides(entry))
        if not paths:
            raise ValueError(f"no slides found in data.source.slides = {self.source.slides}")
        return paths

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train_tiles is not None:
            return
        if self.source.cache is not None:
            self._setup_cache()
        elif self.source.tiles is not None:
            folder = slides.TileFolder(self.source.tiles)
            train, hold = split_holdout(
                len(folder),
                self.source.holdout_fraction,
                self.source.holdout_max_tiles,
                self.seed,
            )
            self.train_tiles = torch.utils.data.Subset(folder, train.tolist())
            self.holdout_tiles = torch.utils.data.Subset(folder, hold.tolist())
        else:
            self._setup_slides()
        if len(self.train_tiles) == 0:
            raise ValueError(
                "no training tiles: the slides have no tissue tile at "
                f"{self.source.mpp} um/px, {self.source.tile_size} px, min_tissue "
                f"{self.source.min_tissue}; lower data.source.min_tissue or check the slides"
            )

    def _setup_cache(self) -> None:
        from vitkd.cache.source import open_cache

        module = self.trainer.lightning_module if self.trainer is not None else None
        self.cache_tiles, self.train_tiles, self.holdout_tiles = open_cache(
            self.source.cache,
            self.batch_size,
            self.source.holdout_fraction,
            self.source.holdout_max_tiles,
            self.seed,
            module,
        )

    def _setup_slides(self) -> None:
        paths = self.slide_paths()
        counts = np.full(len(paths), FAILED, np.int64)
        grids: list[Path | slides.TileGrid | None] = [None] * len(paths)
        errors: dict[int, str] = {}
        coords = self._coords_files(paths)
        alone = world()[0] == 1
        for i, path in enumerate(paths):
            try:
                grids[i], counts[i] = self._slide_tiles(path, coords[i] if coords else None)
            except (slides.SlideError, OSError, ValueError) as err:
                if alone and not self.source.skip_errors:
                    raise
                errors[i] = str(err)
        # every rank keeps the same slides, whatever failed where (a collective under DDP)
        counts = agree_on_counts(counts, errors, paths, self.source.skip_errors)
        keep = np.flatnonzero(counts != FAILED)
        index = TileIndex([paths[i] for i in keep], [grids[i] for i in keep], counts[keep])
        held = holdout_indices(
            len(index), self.source.holdout_fraction, self.source.holdout_max_tiles, self.seed
        )
        reader = SlideTileReader(index, self.source.mpp, slide_mpp=self.source.slide_mpp)
        self.tile_index = index
        self.train_tiles = IndexTiles(reader, exclude=held)
        self.holdout_tiles = IndexTiles(reader, only=held)
        log.info(
            "tiles: %d for training, %d held out, from %d slides",
            len(self.train_tiles),
            len(self.holdout_tiles),
            len(keep),
        )

    def _coords_files(self, paths: list[Path]) -> list[Path | None] | None:
        """Each slide's coords file when `source.coords` is set (`None` where missing)."""
        if self.source.coords is None:
            return None
        files = match_coords(paths, self.source.coords)
        self._coords_missing = (sum(f is None for f in files), len(files))
        return files

    def _slide_tiles(self, path: Path, coords: Path | None) -> tuple[Path | slides.TileGrid, int]:
        """(coords file or grid, tile count) of one slide; raises when it cannot be used."""
        if self.source.coords is not None:
            if coords is None:
                raise slides.SlideNotFoundError(
                    missing_coords_message(path, self.source.coords, *self._coords_missing)
                )
            return coords, read_coords_count(coords, self.source.tile_size, self.source.mpp)
        with slides.open_slide(path, mpp=self.source.slide_mpp) as slide:
            grid = slides.make_grid(
                slide,
                mpp=self.source.mpp,
                size=self.source.tile_size,
                overlap=self.source.overlap,
                min_tissue=self.source.min_tissue,
            )
        return grid, len(grid)

    def multicrop(self) -> MultiCrop:
        """The multi-crop transform of this configuration."""
        c = self.crops
        return MultiCrop(
            global_size=c.global_size,
            local_size=c.local_size,
            n_global=c.n_global,
            n_local=c.n_local,
            global_scale=c.global_scale,
            local_scale=c.local_scale,
            augment=c.augment,
            teacher_view=c.teacher_view,
            seed=self.seed,
        )

    def _loader_kwargs(self) -> dict:
        pin = self.pin_memory == "on" or (self.pin_memory == "auto" and torch.cuda.is_available())
        kwargs: dict = {"num_workers": self.num_workers, "pin_memory": pin}
        if self.num_workers > 0:
            kwargs["persistent_workers"] = self.persistent_workers
            kwargs["prefetch_factor"] = self.prefetch_factor
        return kwargs

    @override
    def train_dataloader(self) -> DataLoader:
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
        draws = self.samples_per_epoch or len(self.train_tiles)
        per_device = draws // world
        if per_device < self.batch_size:
            raise ValueError(
                f"the data cannot fill one batch: {draws} draws per epoch over {world} device(s) "
                f"give {per_device} per device, fewer than data.batch_size={self.batch_size}; "
                "lower data.batch_size, raise data.samples_per_epoch or add slides"
            )
        dataset, collate = self._dataset_and_collate()
        sampler = train_sampler(
            self.sampling,
            self.trainer,
            prefetch_depth=self.num_workers * self.prefetch_factor + 2,
            progress=_TrainerProgress(self.trainer) if self.trainer is not None else None,
            num_items=len(self.train_tiles),
            samples_per_epoch=draws,
            batch_size=self.batch_size,
            num_replicas=world,
            rank=rank,
            seed=self.seed,
        )
        if self.curriculum.active() or self.sampling.kind == "adaptive":
            if not isinstance(dataset, MultiCropDataset):
                raise ValueError(
                    "data.curriculum and data.sampling.kind=adaptive need the CPU augmentation "
                    "path: set data.augment_device: cpu"
                )
            scales = (self.crops.global_scale, self.crops.local_scale)
            dataset.curriculum = bind_curriculum(
                self.curriculum, scales, self.trainer, len(dataset), draws, self.batch_size, world
            )
        loader = DataLoader if self.trainer is None else StepResumedLoader
        return loader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            collate_fn=collate,
            **self._loader_kwargs(),
        )

    def augment_on_device(self) -> bool:
        """Whether crops are cut and augmented on the training device (`augment_device`)."""
        if self.augment_device not in ("auto", "cpu", "gpu"):
            raise ValueError(
                f"data.augment_device={self.augment_device!r}: choose 'auto', 'cpu' or 'gpu'"
            )
        if self.augment_device == "auto":
            return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        return self.augment_device == "gpu"

    def _dataset_and_collate(self) -> tuple[Dataset, object]:
        if self.source.cache is not None:
            if self.augment_on_device():
                raise ValueError("data.source.cache crops on the CPU: set data.augment_device: cpu")
            from vitkd.cache.source import cached_loader_parts

            return cached_loader_parts(
                self.cache_tiles, self.train_tiles, self.crops, self.masking, self.seed
            )
        if not self.augment_on_device():
            dataset = MultiCropDataset(self.train_tiles, self.multicrop(), seed=self.seed)
            return dataset, MultiCropCollate(self.masking, self.crops.global_size)
        from vitkd.data.gpu import DeviceMultiCrop, DeviceMultiCropCollate, DeviceMultiCropDataset

        c = self.crops
        self._device_crop = DeviceMultiCrop(
            c.global_size,
            c.local_size,
            c.n_global,
            c.n_local,
            c.global_scale,
            c.local_scale,
            c.augment,
            c.teacher_view,
        )
        dataset = DeviceMultiCropDataset(self.train_tiles, self._device_crop, seed=self.seed)
        return dataset, DeviceMultiCropCollate(self.masking, c.global_size, c.n_global)

    @override
    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        # device path: the batch holds tiles and parameters; cut and colour the crops here
        if isinstance(batch, dict) and "tiles" in batch and self._device_crop is not None:
            return self._device_crop.apply(batch)
        return batch

    def holdout_dataloader(self, batch_size: int = 64) -> DataLoader:
        """Held-out tiles, un-augmented, as `(uint8 (B, 3, S, S), coords)` batches."""
        self.setup()
        return DataLoader(
            _ToTensor(self.holdout_tiles),
            batch_size=batch_size,
            shuffle=False,
            num_workers=0,
        )


class _TrainerProgress:
    """Batches trained so far per rank (restored with the trainer state on resume)."""

    def __init__(self, trainer: L.Trainer) -> None:
        self.trainer = trainer

    def __call__(self) -> int:
        return self.trainer.global_step * self.trainer.accumulate_grad_batches


class _ToTensor(Dataset):
    """uint8 HWC tile -> uint8 CHW tensor, dropping any extra item fields."""

    def __init__(self, tiles: Dataset) -> None:
        self.tiles = tiles

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> torch.Tensor:
        item = self.tiles[index]
        tile = item[0] if isinstance(item, tuple) else item
        return torch.from_numpy(np.ascontiguousarray(np.asarray(tile).transpose(2, 0, 1)))
