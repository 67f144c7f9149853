"""Exports record which adaptor belongs to which teacher; teacher-space features load back."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from distill_fixtures import tiny_data, tiny_module, trainer
from test_multi_teacher import TEACHER_A, TEACHER_B

from vitkd.distill.config import BalanceConfig, TeacherConfig
from vitkd.distill.summary import RunSummary
from vitkd.export import export_checkpoint
from vitkd.models.teacher_space import load_teacher_space


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    module = tiny_module(
        teacher=TeacherConfig(),
        teachers=[TEACHER_A, TEACHER_B],
        matryoshka=[32, 16],
        balance=BalanceConfig(standardize="phis", standardize_samples=8),
    )
    fit = trainer(tmp, max_steps=2, enable_checkpointing=True, callbacks=[RunSummary()])
    fit.fit(module, tiny_data())
    return module, tmp


def test_export_records_teachers_sizes_and_adaptors(run) -> None:
    module, tmp = run
    export = next(tmp.rglob("export"))
    block = json.loads((export / "config.json").read_text())["vitkd"]
    assert block["teachers"] == [e.key for e in module.teacher_entries]
    assert block["matryoshka"] == [32, 16]
    assert block["adaptors"]["standardize"] == "phis"
    assert [t["name"] for t in block["adaptors"]["teachers"]] == [TEACHER_A.name, TEACHER_B.name]
    # the backbone stays plain timm
    model = timm.create_model(
        "vit_small_patch14_reg4_dinov2",
        pretrained=True,
        pretrained_cfg_overlay={"file": str(export / "model.safetensors")},
        **json.loads((export / "config.json").read_text())["model_args"],
    )
    assert model.num_features == 32


@pytest.mark.parametrize(("key", "index"), [(TEACHER_A.name, 0), ("b16", 1)])
@pytest.mark.parametrize("size", [32, 16])
def test_teacher_space_is_the_trained_adaptor_with_phis_undone(run, key, index, size) -> None:
    module, tmp = run
    export = next(tmp.rglob("export"))
    space = load_teacher_space(export, key, "cls", size)
    x = torch.randn(3, 32)
    objective = module.teacher_objectives()[index].levels[str(size)]
    phis = module.standardizers[f"{key}_cls"]
    with torch.no_grad():
        expected = phis.inverse(objective.cls_adaptor(x[:, :size]))
    torch.testing.assert_close(space(x), expected)


def test_checkpoint_export_writes_the_same_adaptors(run, tmp_path) -> None:
    _, tmp = run
    ckpt = next(tmp.rglob("*.ckpt"))
    out = export_checkpoint(ckpt, tmp_path / "from_ckpt")
    x = torch.randn(2, 32)
    a = load_teacher_space(out, "b16", "patch", 16)(x)
    b = load_teacher_space(next(tmp.rglob("export")), "b16", "patch", 16)(x)
    torch.testing.assert_close(a, b)


def test_teacher_space_errors_name_what_exists(run) -> None:
    _, tmp = run
    export = next(tmp.rglob("export"))
    with pytest.raises(ValueError, match=r"no adaptor for teacher 'uni'; it has"):
        load_teacher_space(export, "uni")
    with pytest.raises(ValueError, match=r"trained sizes are \[32, 16\]"):
        load_teacher_space(export, "b16", size=8)
