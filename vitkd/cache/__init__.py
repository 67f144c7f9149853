"""Offline teacher-feature cache: teachers run once over tiles; training reads their targets."""

from vitkd.cache.errors import CacheError, CacheMismatchError
from vitkd.cache.manifest import CacheManifest, read_manifest
from vitkd.models.fingerprint import same_fingerprint, teacher_fingerprint

__all__ = [
    "CacheError",
    "CacheManifest",
    "CacheMismatchError",
    "read_manifest",
    "same_fingerprint",
    "teacher_fingerprint",
]
