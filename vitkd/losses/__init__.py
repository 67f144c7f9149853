"""Distillation losses: DINO, iBOT, KoLeo, feature, relation and response-KL, plus centring."""

from vitkd.losses.centering import (
    CENTERING_MODES,
    CenteringMode,
    SoftmaxCenter,
    check_centering_mode,
    sinkhorn_knopp,
)
from vitkd.losses.dino import DINOLoss, dino_pair_count
from vitkd.losses.feature import FeatureLoss, FeatureLossTerms
from vitkd.losses.ibot import iBOTPatchLoss
from vitkd.losses.koleo import KoLeoLoss
from vitkd.losses.relation import RelationLoss
from vitkd.losses.response_kl import ResponseKLLoss

__all__ = [
    "CENTERING_MODES",
    "CenteringMode",
    "DINOLoss",
    "FeatureLoss",
    "FeatureLossTerms",
    "KoLeoLoss",
    "RelationLoss",
    "ResponseKLLoss",
    "SoftmaxCenter",
    "check_centering_mode",
    "dino_pair_count",
    "iBOTPatchLoss",
    "sinkhorn_knopp",
]
