"""Validation and integer coding of the embeddings and per-sample labels the robustness metrics take."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CodedInputs:
    """Embeddings plus integer codes; codes follow the sorted order of the label values.

    Sorted codes reproduce sklearn's ``LabelEncoder``, which PathoROB uses, so the kNN
    majority vote breaks ties towards the same class.
    """

    embeddings: np.ndarray
    biology: np.ndarray
    centre: np.ndarray
    slide: np.ndarray
    group: np.ndarray
    biology_names: np.ndarray
    centre_names: np.ndarray

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.embeddings.shape[0])


def encode(values: Sequence | np.ndarray, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (n,) and the sorted unique values of one label column.

    Raises:
        ValueError: wrong length or missing values (None / NaN / empty string).
    """
    arr = np.asarray(values, dtype=object).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values for {n} embeddings")
    missing = [
        i for i, v in enumerate(arr) if v is None or v == "" or (isinstance(v, float) and v != v)
    ]
    if missing:
        raise ValueError(
            f"{name} is missing for {len(missing)} sample(s), first at row {missing[0]}"
        )
    names, codes = np.unique(arr.astype(str), return_inverse=True)
    return codes.astype(np.int64), names


def code_inputs(
    embeddings: np.ndarray,
    biology: Sequence,
    centre: Sequence,
    slide: Sequence | None = None,
    group: Sequence | None = None,
) -> CodedInputs:
    """Check shapes and finiteness, then code every label column as integers.

    Without `slide` every sample is its own slide (only the query itself is excluded from
    its neighbours); without `group` all samples form one group.

    Raises:
        ValueError: embeddings not 2-D, fewer than 2 rows, non-finite values, label length
            mismatch or missing labels.
    """
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (n, dim), got shape {x.shape}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 embeddings, got {n}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"embeddings have NaN/inf in {rows.size} row(s), first at row {rows[0]}; "
            "drop or re-extract them"
        )
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    if (norms == 0).any():
        raise ValueError(
            f"{int((norms == 0).sum())} embedding(s) are all zeros (no direction for cosine), "
            f"first at row {int(np.flatnonzero(norms == 0)[0])}"
        )
    bio, bio_names = encode(biology, "biology", n)
    cen, cen_names = encode(centre, "centre", n)
    sl = np.arange(n, dtype=np.int64) if slide is None else encode(slide, "slide", n)[0]
    gr = np.zeros(n, dtype=np.int64) if group is None else encode(group, "group", n)[0]
    return CodedInputs(x, bio, cen, sl, gr, bio_names, cen_names)
