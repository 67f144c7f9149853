"""Check that a cache was built by the teachers a distillation module trains against."""

from __future__ import annotations

from typing import Any

from vitkd.cache.errors import CacheMismatchError
from vitkd.cache.manifest import CacheManifest
from vitkd.models.fingerprint import same_fingerprint, teacher_fingerprint


def module_teachers(module: Any) -> dict[str, dict[str, Any]]:
    """{key: {name, weights, fingerprint, mean, std}} of a `DistillationModule`'s teachers.

    The fingerprints are the ones the module took in fp32 at build time (a bf16 cast later
    would change a fresh probe sum).
    """
    models = module.teacher_models() if hasattr(module, "teacher_models") else [module.teacher]
    entries = getattr(module, "teacher_entries", None)
    saved = getattr(module, "_teacher_fingerprints", None) or {}
    out = {}
    for i, model in enumerate(models):
        if entries:
            key, config = entries[i].key, entries[i].config
        else:
            config = module.teacher_cfg
            key = getattr(config, "key", None) or config.name
        fingerprint = saved.get(key)
        if fingerprint is None:
            fingerprint = getattr(module, "_teacher_fingerprint", None) if i == 0 else None
        if fingerprint is None:
            fingerprint = teacher_fingerprint(model)
        out[key] = {
            "name": config.name,
            "weights": config.weights,
            "fingerprint": float(fingerprint),
            "mean": [float(v) for v in model.spec.mean],
            "std": [float(v) for v in model.spec.std],
        }
    return out


def check_cache_teachers(manifest: CacheManifest, folder: str, teachers: dict[str, dict]) -> None:
    """Raise `CacheMismatchError` when a cached teacher is not the module's teacher of that key.

    Every cached key the module has must match its fingerprint and normalisation; at least one
    module teacher must be cached (else the cache would be read for nothing). Teachers of the
    module that the cache lacks run live on `batch["teacher"]`.
    """
    cached = {t["key"]: t for t in manifest.teachers}
    shared = [k for k in teachers if k in cached]
    if not shared:
        raise CacheMismatchError(
            f"the cache {folder} holds teacher(s) {sorted(cached)}, the model trains against "
            f"{sorted(teachers)}: no teacher key in common; build a cache for this config "
            "(python -m vitkd.cache --config ...)"
        )
    for key in shared:
        mine, theirs = teachers[key], cached[key]
        if not same_fingerprint(theirs["fingerprint"], mine["fingerprint"]):
            raise CacheMismatchError(
                f"the cache {folder} was built for another teacher {key!r}: cached "
                f"{theirs['name']} (weights={theirs['weights']}, fingerprint "
                f"{theirs['fingerprint']!r}), configured {mine['name']} (weights="
                f"{mine['weights']}, fingerprint {mine['fingerprint']!r}); point the teacher at "
                "the weights the cache was built with, or build a new cache"
            )
        if theirs["mean"] != mine["mean"] or theirs["std"] != mine["std"]:
            raise CacheMismatchError(
                f"the cache {folder} ran teacher {key!r} with mean {theirs['mean']} std "
                f"{theirs['std']}, configured mean {mine['mean']} std {mine['std']}; its targets "
                "are for another normalisation: build a new cache"
            )
