"""Labelled embedding splits handed to the probes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import balanced_accuracy_score


class ProbeInputError(ValueError):
    """Probe inputs are inconsistent; the message names the file/column and the fix."""


@dataclass
class ProbeData:
    """Embeddings and integer labels per split; `val` and `test` may be empty (0 rows).

    `groups_train` names the slide (or patient) of each train row when it is known, so a
    validation split held out of train can keep each slide's tiles together.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    groups_train: np.ndarray | None = None
    group_name: str = "slide"

    def prefix(self, dim: int) -> ProbeData:
        """The same data with only the first `dim` embedding dimensions (a Matryoshka size)."""
        width = self.x_train.shape[1]
        if not 0 < dim <= width:
            raise ProbeInputError(f"--dims {dim}: the embeddings have {width} dimensions")
        return dataclasses.replace(
            self,
            x_train=self.x_train[:, :dim],
            x_val=self.x_val[:, :dim],
            x_test=self.x_test[:, :dim],
        )

    def __post_init__(self) -> None:
        """Check shapes and that there is something to train and to score on."""
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 2 or y.shape != (x.shape[0],):
                raise ProbeInputError(
                    f"{split}: embeddings {x.shape} and labels {y.shape} do not match"
                )
        if self.groups_train is not None and len(self.groups_train) != len(self.y_train):
            raise ProbeInputError(
                f"{len(self.groups_train)} {self.group_name} ids for {len(self.y_train)} train rows"
            )
        if len(self.y_train) == 0:
            raise ProbeInputError("no rows with split 'train'; label some rows train")
        if len(self.y_val) == 0 and len(self.y_test) == 0:
            raise ProbeInputError("no rows with split 'val' or 'test' to score on")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def eval_split(self) -> tuple[str, np.ndarray, np.ndarray]:
        """The split scores are reported on: test when present, else val (as eva does for CRC/BACH)."""
        if len(self.y_test):
            return "test", self.x_test, self.y_test
        return "val", self.x_val, self.y_val

    def monitor_split(self) -> tuple[str, np.ndarray, np.ndarray]:
        """The split early stopping watches: val when present, else test."""
        if len(self.y_val):
            return "val", self.x_val, self.y_val
        return "test", self.x_test, self.y_test


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in `y_true` (sklearn's definition)."""
    return float(balanced_accuracy_score(y_true, y_pred))
