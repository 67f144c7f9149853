"""A Backbone as an ONNX graph (uint8 tiles in, CLS and patch tokens out) and its fp16/int8 forms."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from vitkd.models import Backbone

log = logging.getLogger(__name__)

INPUT = "tiles"
OUTPUTS = ("cls", "patches")
METADATA_KEY = "vitkd"
MIN_OPSET = 17
MISSING_EXTRA = "the ONNX export needs the `onnx` extra: pip install 'vitkd[onnx]'"


def require_onnx() -> None:
    """Raise an `ImportError` naming the extra when onnx / onnxruntime are not installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ImportError(f"{MISSING_EXTRA} ({err})") from None


class _Tokens(nn.Module):
    """The traced function: uint8 (B, 3, S, S) -> cls (B, D), patches (B, N, D) in float32."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.backbone.forward_tokens(tiles)
        return tokens.cls.float(), tokens.patches.float()


def export_onnx(backbone: Backbone, path: str | Path, opset: int = 18) -> Path:
    """Trace `backbone` (fp32, eval) to ONNX with a dynamic batch and the model's own
    normalisation inside the graph, so the artefact takes the same uint8 tiles as vitkd."""
    require_onnx()
    if opset < MIN_OPSET:
        raise ValueError(f"--opset {opset}: needs >= {MIN_OPSET} (LayerNormalization)")
    backbone = backbone.float().eval()
    size = backbone.spec.img_size
    example = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    # the exporter prints its progress to stdout: keep the command's own output readable
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(
            _Tokens(backbone).eval(),
            (example,),
            str(path),
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            opset_version=opset,
            dynamo=True,
            dynamic_shapes={"tiles": {0: batch}},
            external_data=False,
            verbose=False,
        )
    return Path(path)


def to_fp16(src: str | Path, dst: str | Path) -> Path:
    """fp16 weights and activations, uint8 in and fp32 out (`keep_io_types`)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)


def quantize_int8_dynamic(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8: int8 MatMul weights (per channel), activations quantised per batch at run
    time. No calibration data."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"],
    )
    return Path(dst)


class _TileReader:
    """onnxruntime's `CalibrationDataReader` protocol over uint8 calibration tiles."""

    def __init__(self, tiles: torch.Tensor, batch_size: int) -> None:
        self._batches: Iterator[np.ndarray] = iter([t.numpy() for t in tiles.split(batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT: batch}


def quantize_int8_static(
    src: str | Path, dst: str | Path, calibration: torch.Tensor, batch_size: int = 16
) -> Path:
    """Static int8 (QDQ): MatMul weights per channel and activations per tensor, with ranges
    calibrated on `calibration` tiles (percentile 99.999, which clips the rare outlier
    activations that min/max ranges let dominate a ViT's scale)."""
    with contextlib.redirect_stdout(io.StringIO()):  # calibration progress prints
        _quantize_static(src, dst, calibration, batch_size)
    return Path(dst)


def _quantize_static(
    src: str | Path, dst: str | Path, calibration: torch.Tensor, batch_size: int
) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quantize_static(
        str(src),
        str(dst),
        _TileReader(calibration, batch_size),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul", "Gemm"],
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.Percentile,
        extra_options={"ActivationSymmetric": True},
    )


def write_metadata(src: str | Path, dst: str | Path, metadata: dict[str, Any]) -> Path:
    """Copy the graph `src` to `dst` with `metadata` as JSON under the `vitkd` metadata key."""
    import onnx

    model = onnx.load(str(src))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True)
    onnx.save(model, str(dst))
    return Path(dst)


def cpu_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of `path` (all graph optimisations), `threads` intra-op threads
    (default: torch's, so the two runtimes are timed on the same cores)."""
    require_onnx()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session_metadata(session: Any, path: str | Path) -> dict[str, Any]:
    """The `vitkd` metadata of an artefact written by `python -m vitkd.export --format onnx`."""
    found = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if found is None:
        raise ValueError(
            f"{path}: no `{METADATA_KEY}` metadata; pass an ONNX file written by "
            "`python -m vitkd.export --format onnx`"
        )
    return json.loads(found)
