"""Similarity primitives between two embedding spaces: CKA, ridge and PC R^2, kNN agreement."""

from vitkd.metrics.cka import linear_cka
from vitkd.metrics.knn import knn_agreement
from vitkd.metrics.pc_r2 import pc_r2
from vitkd.metrics.ridge import ridge_r2

__all__ = ["knn_agreement", "linear_cka", "pc_r2", "ridge_r2"]
