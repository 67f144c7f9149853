"""The disk cost of a cache, declared before it is built: bytes per tile per teacher and in all."""

from __future__ import annotations

from typing import Any

# HDF5 bookkeeping per tile: the variable-length image's heap entry and ids/coords (measured
# on small caches; a few tens of bytes beside kilobytes of tokens)
_PER_TILE_OVERHEAD = 40


def teacher_bytes(teacher: dict[str, Any]) -> dict[str, int]:
    """Bytes per tile of one teacher's targets: fp16 CLS, fp16 patches and their indices."""
    dim, tokens = int(teacher["embed_dim"]), int(teacher["patch_tokens"])
    index = 2 if teacher["index_dtype"] == "uint16" else 4
    out = {"cls": 2 * dim, "patches": 2 * tokens * dim, "index": index * tokens}
    out["total"] = sum(out.values())
    return out


def cost_lines(
    teachers: list[dict[str, Any]], image_bytes: float, n_tiles: int, image: str
) -> list[str]:
    """Human-readable cost lines: the image, each teacher, per tile and for all tiles."""
    lines = [f"image: {image_bytes:,.0f} B per tile ({image})"]
    per_tile = image_bytes + _PER_TILE_OVERHEAD
    for t in teachers:
        b = teacher_bytes(t)
        per_tile += b["total"]
        lines.append(
            f"teacher {t['key']}: cls {b['cls']:,} B + patches {t['patch_tokens']}x"
            f"{t['embed_dim']}x2 = {b['patches']:,} B + index {b['index']:,} B = "
            f"{b['total']:,} B per tile (with the image: {b['total'] + image_bytes:,.0f} B)"
        )
    total = per_tile * n_tiles
    lines.append(
        f"total: {per_tile:,.0f} B per tile x {n_tiles:,} tiles = {total / 1e6:,.1f} MB "
        f"({total / 2**30:,.2f} GiB)"
    )
    return lines
