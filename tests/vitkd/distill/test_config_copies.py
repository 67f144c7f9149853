"""Config blocks are frozen, and every module holds its own copy of them and of the defaults."""

from __future__ import annotations

import dataclasses

import pytest
from distill_fixtures import tiny_module

from vitkd.data import datamodule
from vitkd.data.collate import MaskConfig
from vitkd.data.datamodule import CropConfig, DistillDataModule, TileSource
from vitkd.distill import module as module_file
from vitkd.distill.config import (
    HeadConfig,
    LossConfig,
    OptimConfig,
    StudentConfig,
    TeacherConfig,
    as_config,
)
from vitkd.distill.speed import SpeedConfig


def test_config_blocks_are_frozen_and_defaults_are_not_handed_out() -> None:
    module = tiny_module()  # no `speed` argument: the default
    assert module.speed == module_file.DEFAULT_SPEED
    assert module.speed is not module_file.DEFAULT_SPEED
    with pytest.raises(dataclasses.FrozenInstanceError):
        module.teacher_cfg.weights = "elsewhere"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        module.speed.compile_student = True  # type: ignore[misc]


def test_a_shared_config_instance_is_copied_into_each_module() -> None:
    shared = tiny_module().teacher_cfg
    before = dataclasses.asdict(shared)
    first, second = tiny_module(teacher=shared), tiny_module(teacher=shared)
    first.teacher_cfg.kwargs["num_heads"] = 3
    assert dataclasses.asdict(shared) == before
    assert dataclasses.asdict(second.teacher_cfg) == before


@pytest.mark.parametrize(
    ("cls", "default"),
    [
        (TeacherConfig, module_file.DEFAULT_TEACHER),
        (StudentConfig, module_file.DEFAULT_STUDENT),
        (LossConfig, module_file.DEFAULT_LOSSES),
        (HeadConfig, module_file.DEFAULT_HEADS),
        (OptimConfig, module_file.DEFAULT_OPTIM),
        (SpeedConfig, module_file.DEFAULT_SPEED),
    ],
)
def test_the_module_defaults_reach_each_module_as_copies(cls, default) -> None:
    """What `DistillationModule.__init__` does with each default argument."""
    own = as_config(cls, default)
    assert own == default and own is not default
    if hasattr(own, "kwargs"):
        own.kwargs["depth"] = 2
        assert default.kwargs == {}
    # a dict (checkpoint hyper-parameters) is not shared either
    hparams = dataclasses.asdict(default)
    if hasattr(own, "kwargs"):
        as_config(cls, hparams).kwargs["depth"] = 2
        assert hparams["kwargs"] == {}


def test_data_modules_hold_their_own_copies_of_the_data_configs() -> None:
    source = TileSource(slides=["a.svs"])
    first, second = DistillDataModule(source=source), DistillDataModule(source=source)
    first.source.slides.append("b.svs")
    assert source.slides == ["a.svs"] and second.source.slides == ["a.svs"]
    plain = DistillDataModule()
    for own, default in [
        (plain.source, datamodule.DEFAULT_SOURCE),
        (plain.crops, datamodule.DEFAULT_CROPS),
        (plain.masking, datamodule.DEFAULT_MASKING),
    ]:
        assert own == default and own is not default
    for block in (TileSource(), CropConfig(), MaskConfig()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            block.seed = 1  # type: ignore[attr-defined]
