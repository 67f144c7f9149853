"""Bad input to the distillation core: each a clear error naming the culprit and the fix."""

from __future__ import annotations

import pytest
from distill_fixtures import ARCH, tiny_data, tiny_module, trainer
from safetensors.torch import save_file

from vitkd.data.datamodule import TileSource
from vitkd.distill.config import StudentConfig, TeacherConfig, as_config


def test_missing_teacher_weights_file_names_it(tmp_path) -> None:
    missing = tmp_path / "h-optimus-0.safetensors"
    teacher = TeacherConfig(name=ARCH, weights=str(missing), kwargs={"depth": 1, "embed_dim": 48})
    with pytest.raises(FileNotFoundError, match=r"h-optimus-0\.safetensors"):
        tiny_module(teacher=teacher)


def test_mismatched_teacher_weights_list_the_keys(tmp_path) -> None:
    path = tmp_path / "wrong.safetensors"
    import torch

    save_file({"not_a_vit.weight": torch.zeros(2, 2)}, str(path))
    teacher = TeacherConfig(
        name=ARCH, weights=str(path), kwargs={"depth": 1, "embed_dim": 48, "num_heads": 2}
    )
    with pytest.raises(ValueError, match=r"(?s)wrong\.safetensors.*not_a_vit\.weight"):
        tiny_module(teacher=teacher)


def test_unalignable_patch_sizes_are_refused() -> None:
    teacher = TeacherConfig(
        name="vit_small_patch16_224",
        kwargs={"depth": 1, "embed_dim": 48, "num_heads": 2, "img_size": 56},
    )
    with pytest.raises(ValueError, match="patch"):
        tiny_module(teacher=teacher)


def test_empty_slide_list(tmp_path) -> None:
    dm = tiny_data(source=TileSource(slides=[]))
    with pytest.raises(ValueError, match="empty list"):
        trainer(tmp_path, 1).fit(tiny_module(), datamodule=dm)


def test_batch_size_the_data_cannot_fill(tmp_path) -> None:
    dm = tiny_data(batch_size=64, samples_per_epoch=10)
    with pytest.raises(ValueError, match=r"cannot fill one batch.*batch_size=64"):
        trainer(tmp_path, 1).fit(tiny_module(), datamodule=dm)


def test_unknown_key_in_a_config_block_lists_the_valid_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['nmae'\].*valid keys.*'name'"):
        as_config(StudentConfig, {"nmae": "h0-mini"})
