"""Tile-embedding extraction: slides -> TRIDENT-style per-slide HDF5 (`python -m vitkd.embed`)."""

from vitkd.embed.config import EmbedConfig
from vitkd.embed.distributed import run
from vitkd.embed.errors import SlideFailedError
from vitkd.embed.resolve import ResolvedModel, resolve_model
from vitkd.embed.runner import RunSummary, embed_sources
from vitkd.embed.sources import Source, collect_sources
from vitkd.embed.writer import EmbeddingWriter

__all__ = [
    "EmbedConfig",
    "EmbeddingWriter",
    "ResolvedModel",
    "RunSummary",
    "SlideFailedError",
    "Source",
    "collect_sources",
    "embed_sources",
    "resolve_model",
    "run",
]
