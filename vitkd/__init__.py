"""vitkd: distil large pathology ViT foundation models into small, fast, robust ones."""

from vitkd import _offline  # noqa: F401  (must run before timm/albumentations are imported)

__version__ = "0.1.0"
