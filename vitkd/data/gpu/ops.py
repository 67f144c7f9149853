"""Batched on-device crop and colour operations: pure torch, one parameter row per crop.

Images are float tensors (K, 3, H, W) in [0, 1] on any device; every per-crop parameter is a
tensor whose first dimension is K, so a whole batch of crops is transformed in a few kernel
launches. The maths mirrors the CPU ops of `vitkd.data.augment` (OD-space affine, tone curve,
YIQ hue/saturation, Gaussian and disk blur, unsharp mask, sensor noise, ColorJitter,
grayscale, solarisation) so the two paths agree to rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

# ITU-R 601 luma weights (torchvision Grayscale, YIQ's Y row).
LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _col(v: torch.Tensor) -> torch.Tensor:
    """(K,) -> (K, 1, 1, 1) for broadcasting over images."""
    return v.view(-1, 1, 1, 1)


def crop_resize(
    tiles: torch.Tensor,
    index: torch.Tensor,
    boxes: torch.Tensor,
    flips: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """Cut boxes out of tiles, resize to ``size`` x ``size`` and flip some horizontally.

    Bilinear when enlarging; when shrinking, each output pixel averages the source pixels under it
    (``roi_align``'s adaptive sampling), which keeps the result free of aliasing.

    Args:
        tiles: (B, 3, T, T) float images.
        index: (K,) int tile index of each crop.
        boxes: (K, 4) float ``x, y, w, h`` in tile pixels.
        flips: (K,) bool horizontal flips.
        size: output side.

    Returns:
        (K, 3, size, size) float crops.
    """
    rois = torch.cat(
        [index.to(tiles.dtype)[:, None], boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], dim=1
    )
    out = roi_align(
        tiles, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True
    )
    return torch.where(_col(flips), out.flip(-1), out)


def optical_density(x: torch.Tensor) -> torch.Tensor:
    """OD ``-log((I + 1) / 256)`` of [0, 1] images, as `vitkd.data.augment.macenko.OD_LUT`."""
    return -torch.log((x * 255.0 + 1.0) / 256.0)


def od_affine(x: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``od' = od @ matrix + offset`` per crop (stain swaps, HED jitter), back to [0, 1] RGB.

    Args:
        matrix: (K, 3, 3) acting on OD row vectors.
        offset: (K, 3).
    """
    od = torch.einsum("kchw,kcd->kdhw", optical_density(x), matrix.to(x.dtype))
    od = od + offset.to(x.dtype)[:, :, None, None]
    return ((256.0 * torch.exp(-od) - 1.0) / 255.0).clamp(0.0, 1.0)


def tone(
    x: torch.Tensor,
    gains: torch.Tensor,
    gamma: torch.Tensor,
    brightness: torch.Tensor,
    contrast: torch.Tensor,
) -> torch.Tensor:
    """Channel gains, then gamma, then contrast about the mean grey plus brightness.

    The pivot is the crop's mean over all pixels and channels raised to ``gamma``, as
    `vitkd.data.augment.stain.StainAugment` does.

    Args:
        gains: (K, 3) per-channel gains (colour temperature).
        gamma: (K,) exponents.
        brightness: (K,) additive offsets in [0, 1] units.
        contrast: (K,) factors on the distance to the pivot.
    """
    pivot = x.mean(dim=(1, 2, 3)).clamp(0.0, 1.0) ** gamma
    y = (x * gains.to(x.dtype)[:, :, None, None]).clamp(0.0, 1.0) ** _col(gamma)
    y = (y - _col(pivot)) * _col(contrast) + _col(pivot) + _col(brightness)
    return y.clamp(0.0, 1.0)


def hue_saturation_matrix(hue: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """(K, 3, 3) RGB matrices rotating hue by ``hue`` turns and scaling chroma (YIQ space)."""
    k = hue.shape[0]
    c, s = torch.cos(2 * math.pi * hue.double()), torch.sin(2 * math.pi * hue.double())
    sat = saturation.double()
    rot = torch.zeros(k, 3, 3, dtype=torch.float64, device=hue.device)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2] = c * sat, -s * sat
    rot[:, 2, 1], rot[:, 2, 2] = s * sat, c * sat
    dev = hue.device
    return (_YIQ_TO_RGB.to(dev) @ rot @ _RGB_TO_YIQ.to(dev)).float()


def color_matrix(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply a per-crop linear RGB map (K, 3, 3) (rows: output channels) and clamp."""
    return torch.einsum("kdc,kchw->kdhw", matrix.to(x.dtype), x).clamp(0.0, 1.0)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma replicated to three channels."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).expand_as(x)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision brightness: scale and clamp."""
    return (x * _col(factor)).clamp(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision contrast: blend with the mean luma of each crop."""
    mean = grayscale(x)[:, :1].mean(dim=(1, 2, 3))
    return ((x - _col(mean)) * _col(factor) + _col(mean)).clamp(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision saturation: blend with the crop's grayscale."""
    gray = grayscale(x)
    return ((x - gray) * _col(factor) + gray).clamp(0.0, 1.0)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """torchvision's hue: HSV with H moved by ``shift`` turns per crop (same sign, same wrap).

    A YIQ rotation is not the same map, and rotated the other way: at 0.1 turn it was ~20 grey
    levels off torchvision's (and the CPU pipeline's) result.
    """
    maxc, minc = x.amax(dim=1), x.amin(dim=1)
    chroma = maxc - minc
    flat = chroma == 0
    safe = torch.where(flat, torch.ones_like(chroma), chroma)
    sat = chroma / torch.where(flat, torch.ones_like(maxc), maxc)
    r, g, b = x.unbind(dim=1)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    h6 = torch.where(is_r, bc - gc, torch.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(flat, torch.zeros_like(h6), h6) / 6.0
    h = torch.remainder(h + _col(shift)[:, 0], 1.0)
    # HSV back to RGB: each channel is v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + 6.0 * h, 6.0)
        out.append(maxc - maxc * sat * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(out, dim=1).clamp(0.0, 1.0)


def color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """ColorJitter with per-crop factors and per-crop op order.

    Args:
        factors: (K, 4) brightness, contrast, saturation factors and hue shift; neutral values
            (1, 1, 1, 0) leave a crop unchanged.
        order: (K, 4) permutation of 0..3 per crop (0 brightness, 1 contrast, 2 saturation,
            3 hue), as torchvision draws it.
    """
    neutral = torch.tensor([1.0, 1.0, 1.0, 0.0], device=x.device, dtype=factors.dtype)
    ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
    for position in range(4):
        for op_id, op in enumerate(ops):
            active = order[:, position] == op_id
            if bool(active.any()):
                factor = torch.where(active, factors[:, op_id], neutral[op_id])
                x = op(x, factor)
    return x


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(K, 2 radius + 1) normalised 1-D Gaussians; sigma 0 gives the identity kernel."""
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    s = sigma.float().clamp_min(1e-6)[:, None]
    k = torch.exp(-0.5 * (t[None] / s) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def separable_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each crop with its own 1-D kernel along both axes (reflect-101 borders)."""
    k, c, h, w = x.shape
    r = kernels.shape[1] // 2
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0)  # (K*C, 2r+1)
    flat = x.reshape(1, k * c, h, w)
    flat = F.conv2d(
        F.pad(flat, (r, r, 0, 0), mode="reflect"), weight[:, None, None, :], groups=k * c
    )
    flat = F.conv2d(
        F.pad(flat, (0, 0, r, r), mode="reflect"), weight[:, None, :, None], groups=k * c
    )
    return flat.view(k, c, h, w)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int | None = None) -> torch.Tensor:
    """Per-crop Gaussian blur; ``radius`` defaults to ceil(3 max sigma) (sigma 0: unchanged)."""
    if radius is None:
        radius = max(1, math.ceil(3 * float(sigma.max())))
    out = separable_blur(x, gaussian_kernels(sigma, radius))
    return torch.where(_col(sigma > 0), out, x)


def disk_kernels(radius: torch.Tensor) -> torch.Tensor:
    """(K, 2R + 1, 2R + 1) anti-aliased normalised disks, R = ceil(max radius)."""
    r = max(1, math.ceil(float(radius.max())))
    t = torch.arange(-r, r + 1, device=radius.device, dtype=torch.float32)
    dist = torch.hypot(t[:, None], t[None, :])
    k = (radius.float()[:, None, None] + 0.5 - dist[None]).clamp(0.0, 1.0)
    return k / k.sum(dim=(1, 2), keepdim=True)


def defocus(x: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Per-crop disk blur (out-of-focus optics); radius 0 leaves a crop unchanged."""
    k, c, h, w = x.shape
    kernels = disk_kernels(radius).to(x.dtype)
    r = kernels.shape[-1] // 2
    weight = kernels.repeat_interleave(c, dim=0)[:, None]  # (K*C, 1, 2r+1, 2r+1)
    flat = F.pad(x.reshape(1, k * c, h, w), (r, r, r, r), mode="reflect")
    out = F.conv2d(flat, weight, groups=k * c).view(k, c, h, w)
    return torch.where(_col(radius > 0), out, x)


def downscale(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Resolution loss: area-downsample by ``factor`` (< 1) then bilinear back, per crop.

    Crops sharing a reduced size are processed together (one loop step per distinct size).
    """
    h, w = x.shape[-2:]
    small_h = (h * factor).round().clamp_min(1).long()
    small_w = (w * factor).round().clamp_min(1).long()
    out = x.clone()
    todo = factor < 1
    for sh, sw in {(int(a), int(b)) for a, b in zip(small_h[todo], small_w[todo], strict=True)}:
        pick = todo & (small_h == sh) & (small_w == sw)
        small = F.interpolate(x[pick], size=(sh, sw), mode="area")
        out[pick] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return out


def sharpen(x: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Unsharp mask ``x + amount * (x - blur_sigma1(x))``; amount 0 leaves a crop unchanged."""
    blurred = gaussian_blur(x, torch.ones_like(amount), radius=3)
    return (x + _col(amount) * (x - blurred)).clamp(0.0, 1.0)


def add_noise(x: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Additive Gaussian sensor noise of ``std`` grey levels (K,), from ``generator``."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise * _col(std / 255.0)).clamp(0.0, 1.0)


def solarize(x: torch.Tensor, flags: torch.Tensor, threshold: float = 128 / 255) -> torch.Tensor:
    """Invert values >= ``threshold`` on the flagged crops."""
    return torch.where(_col(flags) & (x >= threshold), 1.0 - x, x)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> rounded uint8."""
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)
