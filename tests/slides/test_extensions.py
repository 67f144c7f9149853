"""One list of slide and image extensions: `slides.paths`; no other module hard-codes one."""

import ast
from pathlib import Path

from slides import paths

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("slides", "vitkd", "evaluation", "scripts")
KNOWN = set(paths.SLIDE_EXTENSIONS)


def _extension_literals(text: str, name: str) -> list[str]:
    """`name:line` of tuple/list/set literals holding two or more known extensions."""
    hits = []
    for node in ast.walk(ast.parse(text, name)):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if sum(isinstance(n, str) and n.lower() in KNOWN for n in names) >= 2:
                hits.append(f"{name}:{node.lineno}")
    return hits


def test_no_module_but_slides_paths_lists_extensions() -> None:
    own = Path(paths.__file__).resolve()
    hits = [
        hit
        for package in PACKAGES
        for source in sorted((ROOT / package).rglob("*.py"))
        if source.resolve() != own
        for hit in _extension_literals(source.read_text(), str(source.relative_to(ROOT)))
    ]
    assert hits == [], f"import the extension lists from slides.paths instead: {hits}"


def test_the_scan_finds_a_hard_coded_list() -> None:
    text = 'EXTS = (".svs", ".NDPI")\nOK = (".ckpt",)\nif s in {".png", ".jpg"}:\n    pass\n'
    assert _extension_literals(text, "m.py") == ["m.py:1", "m.py:3"]


def test_derived_lists() -> None:
    assert set(paths.TIFF_EXTENSIONS) <= set(paths.OPENSLIDE_EXTENSIONS) & set(
        paths.IMAGE_EXTENSIONS
    )
    assert not set(paths.PLAIN_IMAGE_EXTENSIONS) & set(paths.OPENSLIDE_EXTENSIONS)
    assert set(paths.SLIDE_EXTENSIONS) == set(paths.OPENSLIDE_EXTENSIONS) | set(
        paths.IMAGE_EXTENSIONS
    )
