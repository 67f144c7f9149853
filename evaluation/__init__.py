"""Evaluation of distilled encoders: probes, HEST-style regression, PLISM robustness, fidelity."""

import vitkd  # noqa: F401  (sets the offline environment before timm is imported)
