"""The settings of one embedding run, shared by the CLI, the runner and every rank."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_MODES = ("cls", "cls+mean", "patch")
PRECISIONS = ("auto", "32", "bf16")


@dataclass
class EmbedConfig:
    """Everything `python -m vitkd.embed` was asked to do.

    Args:
        inputs: slide files, folders of slides, CSVs of slide paths, or folders of tile images.
        model: vitkd export folder, vitkd `.ckpt`, preset name or timm architecture name.
        out: output folder for `<slide name>.h5` files and `embed_log.jsonl`.
        weights: local weights for a preset or timm name.
        which: branch of a vitkd checkpoint to embed with (`ema` or `student`).
        model_kwargs: extra timm keyword arguments for a preset or timm name.
        mpp: target microns per pixel of the tiles.
        size: tile side in pixels at `mpp`; None means the model's input size.
        batch_size: tiles per forward pass.
        workers: DataLoader worker processes per rank (decoding and preprocessing).
        tokens: `cls` (D), `cls+mean` (2D) or `patch` (n_patches, D).
        precision: `auto` (bf16 autocast on CUDA, fp32 on CPU), `32` or `bf16`.
        skip_errors: log a failing slide and go on instead of stopping.
        overwrite: recompute slides whose output already exists.
        devices: processes (one per device) the slides are split across.
        coords: folder of `python -m slides tile` coords files, or one file for one slide.
        min_tissue: tissue fraction a tile needs to be kept.
        slide_mpp: level-0 microns per pixel for slides whose metadata lacks it.
        overlap: overlap between neighbouring tiles, in pixels at `mpp`.
        dim: keep the first `dim` dimensions of every token (a Matryoshka size the model was
            trained with); None keeps them all.
    """

    inputs: list[Path]
    model: str
    out: Path
    weights: Path | None = None
    which: str = "ema"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    mpp: float = 0.5
    size: int | None = None
    batch_size: int = 256
    workers: int = 4
    tokens: str = "cls"
    precision: str = "auto"
    skip_errors: bool = False
    overwrite: bool = False
    devices: int = 1
    coords: Path | None = None
    min_tissue: float = 0.5
    slide_mpp: float | None = None
    overlap: int = 0
    dim: int | None = None

    def __post_init__(self) -> None:
        if self.tokens not in TOKEN_MODES:
            raise ValueError(f"--tokens {self.tokens!r}: choose one of {', '.join(TOKEN_MODES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision {self.precision!r}: choose one of {PRECISIONS}")
        if self.which not in ("ema", "student"):
            raise ValueError(f"--which {self.which!r}: choose 'ema' or 'student'")
        for name in ("batch_size", "devices"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")
        if self.mpp <= 0:
            raise ValueError(f"--mpp must be > 0 (microns per pixel), got {self.mpp}")
        if self.dim is not None and self.dim < 1:
            raise ValueError(f"--dim must be a positive embedding size, got {self.dim}")
        if self.size is not None and self.size < 1:
            raise ValueError(f"--size must be a positive tile side in pixels, got {self.size}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ValueError(f"--min-tissue must be in [0, 1], got {self.min_tissue}")
