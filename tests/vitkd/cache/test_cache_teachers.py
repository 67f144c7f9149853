"""Several teachers in one cache: keys and random seeds as the module's, each one checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from cache_fixtures import TEACHER, build, cache_data, quiet_trainer, tiny_module

from vitkd.cache import CacheMismatchError, read_manifest
from vitkd.cache.teachers import teacher_blocks
from vitkd.distill.config import TeacherConfig

SECOND = {**TEACHER, "kwargs": {**TEACHER["kwargs"], "embed_dim": 32}, "key": "narrow"}
TWO = {"teachers": [{**TEACHER, "key": "wide"}, SECOND]}


def test_keys_follow_the_module() -> None:
    assert [k for k, _ in teacher_blocks({"teacher": TEACHER})] == [TEACHER["name"]]
    assert [k for k, _ in teacher_blocks(TWO)] == ["wide", "narrow"]


@pytest.fixture(scope="module")
def two_teacher_cache(slide_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("two") / "c"
    build(slide_dir, out, model=TWO)
    return out


def test_two_teachers_train_from_one_cache(two_teacher_cache: Path, tmp_path: Path) -> None:
    manifest = read_manifest(two_teacher_cache)
    assert [(t["key"], t["embed_dim"]) for t in manifest.teachers] == [("wide", 48), ("narrow", 32)]
    module = tiny_module(
        teacher=TeacherConfig(), teachers=[TeacherConfig(**t) for t in TWO["teachers"]]
    )
    dm = cache_data(two_teacher_cache)
    quiet_trainer(tmp_path, 1).fit(module, dm)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch["cache"]) == {"wide", "narrow"}
    assert batch["cache"]["narrow"]["patches"].shape[-1] == 32


def test_the_second_teacher_is_checked_too(two_teacher_cache: Path, tmp_path: Path) -> None:
    other = [
        TeacherConfig(**{**TEACHER, "key": "wide"}),
        TeacherConfig(**{**SECOND, "kwargs": {**SECOND["kwargs"], "depth": 2}}),
    ]
    module = tiny_module(teacher=TeacherConfig(), teachers=other)
    with pytest.raises(CacheMismatchError, match="another teacher 'narrow'"):
        quiet_trainer(tmp_path, 1).fit(module, cache_data(two_teacher_cache))
