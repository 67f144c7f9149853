"""Load model weights from local files only, strictly, with errors that list what does not match."""

from __future__ import annotations

import importlib
import json
import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file as load_safetensors
from torch import Tensor, nn

_log = logging.getLogger(__name__)

# File names looked for inside an HF-style folder, in this order (as timm's local-dir loader does).
FOLDER_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)
_SHARD_INDEX = "model.safetensors.index.json"
_WRAPPER_KEYS = ("state_dict", "model", "module")
_PREFIXES = ("module.", "model.")
_COMPILED = re.compile(r"(?:^|(?<=\.))_orig_mod\.")
_SHOW = 10


class WeightsNotFoundError(FileNotFoundError):
    """The weights path does not exist or a folder holds no known weights file."""


class WeightsMismatchError(ValueError):
    """A checkpoint does not fit the model: missing, unexpected or wrongly shaped tensors."""


def _not_found(path: Path, what: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"{what}: {path}. Weights are loaded from local files only; pass the path to your "
        "downloaded checkpoint (.safetensors, .bin, .pth/.pt or an HF-style folder)"
    )


def _resolve_file(path: Path) -> list[Path]:
    """Return the weight file(s) behind ``path`` (several for a sharded safetensors folder)."""
    if not path.exists():
        raise _not_found(path, "weights not found")
    if path.is_file():
        return [path]
    for name in FOLDER_FILES:
        if (path / name).is_file():
            return [path / name]
    index = path / _SHARD_INDEX
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / shard for shard in shards]
    raise _not_found(path, f"no weights file ({', '.join(FOLDER_FILES)}) in folder")


def _unwrap(obj: object, path: Path) -> dict[str, Tensor]:
    """Strip training wrappers ({"state_dict": ...}, DDP "module.", compile "_orig_mod.") where unambiguous."""
    while isinstance(obj, Mapping) and not all(isinstance(v, Tensor) for v in obj.values()):
        wrapped = [k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if len(wrapped) != 1:
            raise WeightsMismatchError(
                f"{path}: cannot find the state dict; top-level keys are {sorted(map(str, obj))[:20]}"
                f" (expected tensors, or exactly one of {', '.join(_WRAPPER_KEYS)} holding them)."
                " Extract the backbone's state dict and save it with safetensors"
            )
        obj = obj[wrapped[0]]
    if not isinstance(obj, Mapping):
        raise WeightsMismatchError(
            f"{path}: holds a {type(obj).__name__}, not a state dict (mapping of name -> tensor)"
        )
    # torch.compile wraps a module as `_orig_mod` (at the top or under a wrapper attribute);
    # the segment never names a real parameter, so it is dropped wherever it occurs, as timm does.
    state = {_COMPILED.sub("", k) if isinstance(k, str) else k: v for k, v in obj.items()}
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from a local ``.safetensors``/``.bin``/``.pth``/``.pt`` file or HF folder.

    Pickled files are read with ``weights_only=True`` on the CPU; ``{"state_dict": ...}`` /
    ``{"model": ...}`` wrappers and whole-dict ``module.``/``model.`` prefixes are removed.
    """
    path = Path(path).expanduser()
    state: dict[str, Tensor] = {}
    for file in _resolve_file(path):
        if not file.is_file():
            raise _not_found(file, "weights shard not found")
        if file.suffix == ".safetensors":
            part: object = load_safetensors(str(file), device="cpu")
        else:
            try:
                part = torch.load(file, map_location="cpu", weights_only=True)
            except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
                raise WeightsMismatchError(
                    f"{file}: cannot be read as a PyTorch checkpoint with weights_only=True ({err})."
                    " Convert it to .safetensors in a trusted environment"
                ) from err
        state.update(_unwrap(part, file))
    return state


def _diff(state: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> tuple[list, list, list]:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        (k, tuple(state[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, shapes


def _listing(title: str, items: list) -> str:
    if not items:
        return ""
    shown = ", ".join(str(i) for i in items[:_SHOW])
    more = f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return f"\n  {title} ({len(items)}): {shown}{more}"


def _timm_filter(
    module: nn.Module, state: dict[str, Tensor]
) -> tuple[dict[str, Tensor] | None, str]:
    """Apply timm's own checkpoint conversion for this model family (pos-embed resize, ...).

    Returns the converted state (None when the family has no filter or it failed) and, when it
    failed, a sentence saying why: often the real cause of a mismatch, so it goes to the user.
    """
    family = importlib.import_module(type(module).__module__)
    filter_fn = getattr(family, "checkpoint_filter_fn", None)
    if filter_fn is None:
        return None, ""
    try:
        return filter_fn(dict(state), module), ""
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        name = f"{family.__name__}.checkpoint_filter_fn"
        return None, f"\ntimm's {name} could not convert the file: {type(err).__name__}: {err}"


def load_weights(module: nn.Module, path: str | Path, strict: bool = True) -> None:
    """Load local weights into a timm model, strictly by default.

    Tries the file as is; if it does not fit, applies timm's ``checkpoint_filter_fn`` for the
    model family (pos-embed resampling, original DINOv2 key layout) and tries again.

    Args:
        module: the bare timm model (``Backbone.model``).
        path: weights file or HF-style folder.
        strict: with ``False``, missing and unexpected keys are logged as warnings instead of
            raising (missing ones keep their current values); wrong shapes always raise.
    """
    path = Path(path).expanduser()
    state = load_state_dict_file(path)
    expected = module.state_dict()
    missing, unexpected, shapes = _diff(state, expected)
    filter_failure = ""
    if missing or unexpected or shapes:
        filtered, filter_failure = _timm_filter(module, state)
        if filtered is not None:
            f_diff = _diff(filtered, expected)
            if sum(map(len, f_diff)) <= len(missing) + len(unexpected) + len(shapes):
                _log.info("%s: converted with timm's checkpoint_filter_fn", path)
                state, (missing, unexpected, shapes) = filtered, f_diff
    if shapes or (strict and (missing or unexpected)):
        raise WeightsMismatchError(
            f"{path} does not match {type(module).__name__} "
            f"({len(expected)} tensors expected, {len(state)} in file):"
            + _listing("missing keys", missing)
            + _listing("unexpected keys", unexpected)
            + _listing("shape mismatches (key, file, model)", shapes)
            + filter_failure
            + "\nCheck the architecture name and kwargs (e.g. preset 'h-optimus-0' for H-optimus-0)"
        )
    if missing or unexpected:
        _log.warning(
            "%s loaded with strict=False:%s%s%s",
            path,
            _listing("missing keys (kept as initialised)", missing),
            _listing("unexpected keys (ignored)", unexpected),
            filter_failure,
        )
    # Fill missing entries with the current values so the load itself stays strict.
    full = {k: state.get(k, v) for k, v in expected.items()}
    module.load_state_dict(full, strict=True)


def weight_files(path: str | Path) -> list[Path]:
    """The weight file(s) behind a local path, or `WeightsNotFoundError` naming it; cheap, so
    callers check a path before building a large model."""
    return _resolve_file(Path(path).expanduser())
