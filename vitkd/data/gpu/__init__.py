"""Device-side (GPU) multi-crop and colour/stain augmentation: torch ops on the training device."""

from vitkd.data.gpu.pipeline import DeviceMultiCrop, DeviceMultiCropCollate, DeviceMultiCropDataset

__all__ = ["DeviceMultiCrop", "DeviceMultiCropCollate", "DeviceMultiCropDataset"]
