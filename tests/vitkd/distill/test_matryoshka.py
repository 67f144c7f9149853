"""Nested (Matryoshka) embeddings: each prefix's loss equals a student truncated by hand."""

from __future__ import annotations

import pytest
import torch
from distill_fixtures import tiny_module
from test_multi_teacher import _batch

from vitkd.distill.objectives import FeatureObjective
from vitkd.models import Tokens


def _truncate(tokens: Tokens, m: int) -> Tokens:
    return Tokens(
        cls=tokens.cls[:, :m].clone(),
        registers=tokens.registers[..., :m].clone(),
        patches=tokens.patches[..., :m].clone(),
        grid=tokens.grid,
    )


def test_prefix_loss_equals_the_loss_of_a_student_truncated_by_hand() -> None:
    module = tiny_module(matryoshka=[32, 16, 8], matryoshka_weights=[1.0, 0.5, 0.25])
    batch = _batch()
    terms = module.compute_losses(batch)
    assert {"feature_cls@8", "feature_patch@16", "feature_local@32"} <= set(terms)
    student = module.student.forward_tokens(batch["global"])
    local = module.student.forward_tokens(batch["local"]).cls
    teacher = module.forward_teacher(batch["teacher"])
    for m in (32, 16, 8):
        plain = FeatureObjective(m, 48, module.losses, module.heads_cfg)
        plain.load_state_dict(module.objective.levels[str(m)].state_dict())
        by_hand = plain(_truncate(student, m), local[:, :m].clone(), teacher, n_images=2)
        for name, value in by_hand.items():
            torch.testing.assert_close(terms[f"{name}@{m}"], value, rtol=1e-6, atol=1e-6)
    assert module.term_weight("feature_cls@16") == module.losses.feature_cls * 0.5
    assert module.term_weight("feature_patch@8") == module.losses.feature_patch * 0.25


def test_each_prefix_adaptor_reads_only_its_prefix() -> None:
    module = tiny_module(matryoshka=[32, 8])
    terms = module.compute_losses(_batch())
    terms["feature_cls@8"].backward()
    # the student's last feature channels feed no prefix-8 term: the 8-prefix adaptor and the
    # final norm's weights beyond channel 8 stay without gradient
    norm = module.student.model.norm.weight.grad
    assert norm[:8].abs().sum() > 0 and norm[8:].abs().sum() == 0
    level = module.objective.levels["8"]
    assert level.cls_adaptor(torch.zeros(1, 8)).shape[-1] == 48
    assert all(p.grad is None for p in module.objective.levels["32"].parameters())


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ([64, 32], r"not in 1..32"),
        ([16, 8], "largest size must be the student's width 32"),
        ([32, 32], "each size once"),
    ],
)
def test_bad_sizes_are_clear_errors(sizes: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_module(matryoshka=sizes)


def test_weights_without_sizes_or_of_the_wrong_length_are_errors() -> None:
    with pytest.raises(ValueError, match=r"without model\.matryoshka"):
        tiny_module(matryoshka_weights=[1.0])
    with pytest.raises(ValueError, match=r"one weight >= 0 per size"):
        tiny_module(matryoshka=[32, 16], matryoshka_weights=[1.0])
    with pytest.raises(ValueError, match="targets: features"):
        tiny_module(matryoshka=[32, 16], targets="prototypes")
