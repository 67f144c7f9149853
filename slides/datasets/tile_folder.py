"""Dataset over a folder of tile images (recursive), yielding (tile, index)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from slides.errors import SlideError, SlideNotFoundError
from slides.image_io import read_image
from slides.paths import IMAGE_EXTENSIONS


class TileFolder(Dataset):
    """Every image under `root`, sorted; tiles are (H, W, 3) uint8 RGB whatever the file mode.

    Attributes:
        paths: the image files.
        classes: sorted names of the folders holding images (e.g. `split/class/img.png`).
        labels: index into `classes` for each image.
    """

    def __init__(
        self, root: str | Path, transform: Callable[[np.ndarray], Any] | None = None
    ) -> None:
        """List the images.

        Args:
            root: folder scanned recursively (hidden files and folders skipped).
            transform: applied to each uint8 RGB tile.
        """
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise SlideNotFoundError(f"{self.root}: no such folder of tile images; check the path.")
        self.paths = [
            path
            for path in sorted(self.root.rglob("*"))
            if path.is_file()
            and path.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in path.relative_to(self.root).parts)
        ]
        if not self.paths:
            raise SlideError(
                f"{self.root}: no tile images found (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                "point to the folder that holds the tiles."
            )
        names = [path.parent.name if path.parent != self.root else "." for path in self.paths]
        self.classes = sorted(set(names))
        index = {name: i for i, name in enumerate(self.classes)}
        self.labels = [index[name] for name in names]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        tile = read_image(self.paths[index])
        return (self.transform(tile) if self.transform is not None else tile), index
