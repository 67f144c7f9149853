"""Teacher/student ViT backbones, presets, local-weight loading, heads, adaptors and export."""

from vitkd.models.adaptor import FeatureAdaptor
from vitkd.models.align import AlignmentError, check_alignable, resize_patch_grid
from vitkd.models.backbone import (
    Backbone,
    Tokens,
    build_backbone,
    build_student,
    build_teacher,
)
from vitkd.models.export import (
    export_backbone,
    load_exported,
    read_config,
    split_model_args,
    timm_model_args,
)
from vitkd.models.heads import DINOHead
from vitkd.models.presets import PRESETS, ModelSpec, UnknownModelError, resolve_spec
from vitkd.models.weights import (
    WeightsMismatchError,
    WeightsNotFoundError,
    load_state_dict_file,
    load_weights,
)

__all__ = [
    "PRESETS",
    "AlignmentError",
    "Backbone",
    "DINOHead",
    "FeatureAdaptor",
    "ModelSpec",
    "Tokens",
    "UnknownModelError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "build_backbone",
    "build_student",
    "build_teacher",
    "check_alignable",
    "export_backbone",
    "load_exported",
    "load_state_dict_file",
    "load_weights",
    "read_config",
    "resize_patch_grid",
    "resolve_spec",
    "split_model_args",
    "timm_model_args",
]
