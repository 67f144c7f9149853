"""The fidelity gate: an artefact is written only when its embeddings stay close to fp32 PyTorch."""

from __future__ import annotations

from typing import Any

# per-tile CLS cosine to the fp32 PyTorch model, 1st percentile over the held-out tiles: a
# gate on the mean would let a few badly broken tiles through
GATE_STAT = "p01"
DEFAULT_MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.99, "int8-static": 0.99}


class GateRefusedError(RuntimeError):
    """The artefact missed the fidelity gate; nothing was written. `report` holds the numbers."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def min_cosine_for(variant: str, override: float | None) -> float:
    """The cosine gate of `variant`: `override` (`--min-cosine`) or the variant's default."""
    if override is not None:
        if not 0.0 < override <= 1.0:
            raise ValueError(f"--min-cosine {override}: must be in (0, 1]")
        return override
    return DEFAULT_MIN_COSINE[variant]


def check_gate(report: dict[str, Any]) -> None:
    """Raise `GateRefusedError` when the report's cosine statistic is below its gate, saying by
    how much it missed."""
    got = report["cosine"][GATE_STAT]
    gate = report["gate"]["min_cosine"]
    if got >= gate:
        return
    raise GateRefusedError(
        f"refused: {report['variant']} artefact has {GATE_STAT} cosine {got:.6f} to the fp32 "
        f"PyTorch model on {report['n_tiles']} held-out tiles, below the gate {gate} by "
        f"{gate - got:.2e} (median {report['cosine']['median']:.6f}, min "
        f"{report['cosine']['min']:.6f}); nothing was written. Try another variant (int8-static "
        "calibrates activation ranges, fp16 keeps more precision) or lower --min-cosine "
        "deliberately.",
        report,
    )
