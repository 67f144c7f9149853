"""Merge students that share one initialisation: averaging, task arithmetic, TIES."""

from vitkd.merge.average import average
from vitkd.merge.inputs import MergeError, MergeInput, check_compatible, load_input
from vitkd.merge.task_arithmetic import task_arithmetic, task_vectors
from vitkd.merge.ties import disjoint_mean, elect_sign, ties_merge, trim
from vitkd.merge.write import write_merged

__all__ = [
    "MergeError",
    "MergeInput",
    "average",
    "check_compatible",
    "disjoint_mean",
    "elect_sign",
    "load_input",
    "task_arithmetic",
    "task_vectors",
    "ties_merge",
    "trim",
    "write_merged",
]
