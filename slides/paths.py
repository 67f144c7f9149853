"""Slide file formats, the shipped sample slide, and finding slides in folders or CSV lists."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from slides.errors import SlideError, SlideNotFoundError

SAMPLE_SLIDE = Path(__file__).resolve().parent / "samples" / "CMU-1-Small-Region.svs"
# every shipped sample (see samples/README.md); the TCGA slide's file carries no MPP (20x, ~0.5)
SAMPLE_SLIDES = (SAMPLE_SLIDE, SAMPLE_SLIDE.with_name("TCGA-CR-7395-01A-01-TS1.svs"))
SAMPLES = "samples"  # the name that stands for SAMPLE_SLIDES in a list of slides

# The only lists of file extensions in the project; everything else imports these.
TIFF_EXTENSIONS = (".tif", ".tiff")
OPENSLIDE_EXTENSIONS = (
    ".svs",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".vms",
    ".vmu",
    ".svslide",
    ".bif",
    *TIFF_EXTENSIONS,
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", *TIFF_EXTENSIONS, ".bmp")
SLIDE_EXTENSIONS = tuple(dict.fromkeys(OPENSLIDE_EXTENSIONS + IMAGE_EXTENSIONS))
# Images that can only be tiles: a `.tif` may be a pyramidal slide, so it is not one of them.
PLAIN_IMAGE_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e not in OPENSLIDE_EXTENSIONS)

_CSV_COLUMNS = ("path", "slide_path", "slide", "filename", "file", "wsi")


def _is_slide_file(path: Path) -> bool:
    """True for a visible file whose extension is a slide format."""
    return (
        path.is_file() and path.suffix.lower() in SLIDE_EXTENSIONS and not path.name.startswith(".")
    )


def _slides_in_folder(folder: Path, exclude: Iterable[Path]) -> list[Path]:
    """Slide files under folder (recursively), skipping hidden and excluded folders."""
    excluded = [Path(os.path.abspath(p)) for p in exclude]
    found = []
    for path in sorted(folder.rglob("*")):
        rel_parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in rel_parts):
            continue
        absolute = Path(os.path.abspath(path))  # symlinked slides stay where they are listed
        if any(absolute == ex or ex in absolute.parents for ex in excluded):
            continue
        if _is_slide_file(path):
            found.append(path)
    return found


def csv_rows(csv_path: Path) -> list[tuple[Path, dict[str, str]]]:
    """Each slide path of a CSV list with its row (lower-case column name -> stripped cell).

    The path is in column path/slide_path/slide/filename/file/wsi, else the first column;
    relative paths are resolved from the CSV's folder. A CSV without a header row gives rows
    keyed by column number (`"0"`, `"1"`, ...).
    """
    with csv_path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise SlideError(f"{csv_path}: the CSV is empty; list one slide path per row.")
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(name) for name in _CSV_COLUMNS if name in header), None)
    body = rows[1:] if column is not None else rows
    if column is None:
        column = 0
        if rows[0] and not Path(rows[0][0].strip()).suffix:
            body = rows[1:]  # an unknown header such as "id"
        else:
            header = [str(i) for i in range(max(map(len, rows)))]
    found = []
    for row in body:
        if len(row) <= column or not row[column].strip():
            continue
        path = Path(row[column].strip()).expanduser()
        cells = {name: cell.strip() for name, cell in zip(header, row, strict=False)}
        found.append((path if path.is_absolute() else csv_path.parent / path, cells))
    if not found:
        raise SlideError(
            f"{csv_path}: no slide paths found; put them in a column named 'path' "
            "(relative paths are resolved from the CSV's folder)."
        )
    return found


def _slides_in_csv(csv_path: Path) -> list[Path]:
    """Paths listed in a CSV (column path/slide_path/slide/filename, else the first column)."""
    return [path for path, _ in csv_rows(csv_path)]


def find_slides(source: str | Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Resolve a slide file, a folder of slides (recursive) or a CSV list of slide paths.

    Args:
        source: a slide file, a folder, or a `.csv` with a `path` column.
        exclude: folders to skip while scanning (e.g. the output folder).

    Returns:
        Slide paths, sorted for folders and in file order for CSVs. Paths from a CSV are
        not checked here: opening a missing one raises `SlideNotFoundError`.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise SlideNotFoundError(f"{source}: no such file or folder; check the path.")
    if source.is_dir():
        found = _slides_in_folder(source, exclude)
        if not found:
            raise SlideError(
                f"{source}: no slides found (looked for {', '.join(SLIDE_EXTENSIONS)}); "
                "point to the folder that holds the slides."
            )
        return found
    if source.suffix.lower() == ".csv":
        return _slides_in_csv(source)
    return [source]
