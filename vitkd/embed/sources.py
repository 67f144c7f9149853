"""What to embed: expand SLIDES arguments into slides and folders of tile images, one output each."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from slides import SlideError, find_slides
from slides.paths import PLAIN_IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Source:
    """One unit of work with one output file.

    Args:
        path: a slide file, or a folder of tile images.
        kind: `slide` or `tiles`.
    """

    path: Path
    kind: str

    @property
    def name(self) -> str:
        """Output stem: the slide's file stem, or the tile folder's name."""
        return self.path.name if self.kind == "tiles" else self.path.stem


def _expand(item: Path, exclude: Iterable[Path]) -> list[Source]:
    found = find_slides(item, exclude=exclude)
    if item.is_dir() and all(p.suffix.lower() in PLAIN_IMAGE_EXTENSIONS for p in found):
        return [Source(item, "tiles")]  # only plain images: one "slide" of pre-cut tiles
    return [Source(path, "slide") for path in found]


def collect_sources(
    inputs: Sequence[str | os.PathLike], exclude: Iterable[Path] = ()
) -> list[Source]:
    """Expand files, folders and CSVs into sources, dropping repeats and refusing name clashes.

    A folder that holds slide files gives one source per file found in it (recursively, as
    `slides.find_slides`). A folder that holds only PNG/JPEG/BMP images (recursively) is one
    `tiles` source named after the folder.

    Raises:
        SlideError: an input does not exist or holds nothing to embed, or two inputs would write
            the same `<name>.h5`.
    """
    exclude = list(exclude)
    sources: list[Source] = []
    seen: dict[Path, Source] = {}
    by_name: dict[str, Source] = {}
    for item in inputs:
        for source in _expand(Path(item).expanduser(), exclude):
            key = source.path.resolve()
            if key in seen:
                continue
            clash = by_name.get(source.name)
            if clash is not None:
                raise SlideError(
                    f"{clash.path} and {source.path} would both be written to {source.name}.h5; "
                    "rename one of them or embed them into different --out folders."
                )
            seen[key] = by_name[source.name] = source
            sources.append(source)
    return sources
