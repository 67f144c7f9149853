"""Bad caches are clear errors that name the teacher or the file, and training runs on good ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from cache_fixtures import cache_data, quiet_trainer, tiny_module

from vitkd.cache import CacheError, CacheMismatchError, read_manifest
from vitkd.cache.dataset import CacheTiles
from vitkd.models.fingerprint import teacher_fingerprint


def test_fingerprint_is_the_modules() -> None:
    module = tiny_module()
    assert teacher_fingerprint(module.teacher) == module.teacher_fingerprint()


def test_cache_of_another_teacher_is_refused(built_cache: Path, tmp_path: Path) -> None:
    module = tiny_module(model_seed=5)  # another random teacher of the same shape
    cached = read_manifest(built_cache).teachers[0]
    with pytest.raises(CacheMismatchError) as err:
        quiet_trainer(tmp_path, 1).fit(module, cache_data(built_cache))
    message = str(err.value)
    assert "another teacher 'vit_small_patch14_reg4_dinov2'" in message
    assert repr(cached["fingerprint"]) in message
    assert repr(module.teacher_fingerprint()) in message


def test_training_reads_the_cache(built_cache: Path, tmp_path: Path) -> None:
    module = tiny_module()
    before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    quiet_trainer(tmp_path, 2).fit(module, cache_data(built_cache))
    assert module.global_step == 2
    for k, v in module.teacher.state_dict().items():
        assert v.equal(before[k])


def test_too_few_tiles_for_the_batch(built_cache: Path) -> None:
    dm = cache_data(built_cache, batch_size=32)
    with pytest.raises(CacheError, match=r"holds 20 tiles, 18 for training .* data.batch_size=32"):
        dm.setup()


def test_missing_shard_is_named(cache_copy: Path) -> None:
    (cache_copy / "shard-00001.h5").unlink()
    with pytest.raises(
        CacheError, match=r"shard-00001.h5: cache shard missing; run python -m vitkd.cache again"
    ):
        CacheTiles(cache_copy)


def test_corrupt_shard_is_named(cache_copy: Path) -> None:
    path = cache_copy / "shard-00002.h5"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CacheError, match=r"shard-00002.h5: cache shard cannot be read as HDF5"):
        cache_data(cache_copy).setup()


def test_missing_manifest_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match=r"build the cache first: python -m vitkd\.cache"):
        CacheTiles(tmp_path)
