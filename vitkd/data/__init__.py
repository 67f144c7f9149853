"""Data: tile datasets, multi-crop, stain/scanner augmentation, masking and collation."""
