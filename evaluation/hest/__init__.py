"""HEST-style gene-expression regression from tile embeddings (PCA + ridge, Pearson r)."""

from evaluation.hest.inputs import (
    HestInputError,
    HestTable,
    load_bench_task,
    load_table,
    read_folds,
)
from evaluation.hest.regression import (
    CONSTANT_GENE_POLICIES,
    HEST_SEED,
    hest_fold,
    summarise_folds,
)
from evaluation.hest.run import run_hest

__all__ = [
    "CONSTANT_GENE_POLICIES",
    "HEST_SEED",
    "HestInputError",
    "HestTable",
    "hest_fold",
    "load_bench_task",
    "load_table",
    "read_folds",
    "run_hest",
    "summarise_folds",
]
