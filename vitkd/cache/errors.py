"""Errors of the teacher-feature cache: each names the file or teacher and what to do."""

from __future__ import annotations


class CacheError(ValueError):
    """A cache that cannot be built or read as asked (missing or corrupt shard, bad options)."""


class CacheMismatchError(CacheError):
    """A cache built for other teachers or other settings than the ones asked for."""
