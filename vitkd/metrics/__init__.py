"""Similarity primitives between two embedding spaces: linear CKA, ridge R^2, kNN agreement."""

from vitkd.metrics.cka import linear_cka
from vitkd.metrics.knn import knn_agreement
from vitkd.metrics.ridge import ridge_r2

__all__ = ["knn_agreement", "linear_cka", "ridge_r2"]
