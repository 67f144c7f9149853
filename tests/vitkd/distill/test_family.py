"""Tiered families: several students from one teacher forward, each with its own groups and EMA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from distill_fixtures import ARCH, SIZE, tiny_data, tiny_module, trainer
from test_multi_teacher import _batch

from vitkd.distill.config import StudentConfig
from vitkd.distill.summary import RunSummary

SMALL = StudentConfig(
    name=ARCH, kwargs={"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": SIZE}
)
WIDE = StudentConfig(
    name=ARCH,
    key="wide",
    kwargs={"depth": 2, "embed_dim": 64, "num_heads": 2, "img_size": SIZE},
)


def _family(**overrides):
    return tiny_module(student=StudentConfig(), students=[SMALL, WIDE], **overrides)


def test_first_student_of_a_family_is_the_single_student_bit_for_bit() -> None:
    torch.manual_seed(0)
    alone = tiny_module(student=SMALL)
    torch.manual_seed(0)
    family = _family()
    for key, value in alone.state_dict().items():
        assert torch.equal(value, family.state_dict()[key]), key
    batch = _batch()
    a, b = alone.compute_losses(batch), family.compute_losses(batch)
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_members_terms_equal_a_member_trained_alone_on_the_same_teacher_forward() -> None:
    family = _family()
    member = family.family["wide"]
    batch = _batch()
    terms = family.compute_losses(batch)
    assert {"wide|feature_cls", "wide|feature_patch", "wide|feature_local"} <= set(terms)
    # the member's terms by hand: its backbone and adaptors against the same teacher tokens
    teacher = family.forward_teacher(batch["teacher"])
    s = member.student.forward_tokens(batch["global"])
    local = member.student.forward_tokens(batch["local"]).cls
    by_hand = member.objectives[0](s, local, teacher, n_images=2)
    for name, value in by_hand.items():
        torch.testing.assert_close(terms[f"wide|{name}"], value)
    assert family.term_weight("wide|feature_patch") == family.losses.feature_patch


def test_member_gradients_reach_only_that_member() -> None:
    family = _family()
    terms = family.compute_losses(_batch())
    terms["wide|feature_cls"].backward()
    member = family.family["wide"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in member.student.parameters())
    assert all(p.grad is None for p in family.student.parameters())
    assert all(p.grad is None for p in member.ema.parameters())


def test_family_trains_with_own_groups_emas_and_exports(tmp_path) -> None:
    family = _family()
    before = [p.clone() for p in family.family["wide"].ema.parameters()]
    run = trainer(tmp_path, max_steps=2, callbacks=[RunSummary()])
    run.fit(family, tiny_data())
    optimizer = run.optimizers[0]
    grouped = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in family.family["wide"].student.parameters()} <= grouped
    assert {id(p) for p in family.student.parameters()} <= grouped
    after = list(family.family["wide"].ema.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    export = summary["family_exports"]["wide"]
    config = json.loads((Path(export) / "config.json").read_text())
    assert config["model_args"]["embed_dim"] == 64
    assert config["vitkd"]["family_member"] == "wide"


def test_members_are_clipped_on_their_own_norms() -> None:
    family = _family()
    for p in family.parameters():
        if p.requires_grad:
            p.grad = torch.full_like(p, 10.0)
    family.configure_gradient_clipping(None, gradient_clip_val=1.0)
    for params in (
        [
            p
            for n, p in family.named_parameters()
            if p.requires_grad and not n.startswith("family.")
        ],
        [p for p in family.family["wide"].parameters() if p.requires_grad],
    ):
        norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad) for p in params])
        )
        assert norm == pytest.approx(1.0, rel=1e-4)


def test_bad_families_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="both set"):
        tiny_module(students=[SMALL, WIDE])
    with pytest.raises(ValueError, match="used twice"):
        tiny_module(
            student=StudentConfig(), students=[SMALL, StudentConfig(name=ARCH, key="student")]
        )
    with pytest.raises(ValueError, match="targets: features"):
        tiny_module(student=StudentConfig(), students=[SMALL, WIDE], targets="prototypes")
    with pytest.raises(FileNotFoundError, match=r"model.students\[1\].weights"):
        tiny_module(
            student=StudentConfig(),
            students=[
                SMALL,
                StudentConfig(name=ARCH, weights="/nope/w.safetensors", kwargs=WIDE.kwargs),
            ],
        )
