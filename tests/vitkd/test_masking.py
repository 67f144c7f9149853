"""iBOT block masks: block shapes, counts, stratified ratios, determinism, flattened metadata."""

import numpy as np
import pytest
import torch

from vitkd.data.masking import BlockMaskGenerator, flatten_masks, sample_masks


@pytest.mark.parametrize("grid", [(16, 16), (14, 10)])
def test_blocks_respect_size_aspect_and_count(grid) -> None:
    generator = BlockMaskGenerator(grid)
    n_patches = grid[0] * grid[1]
    shortfalls = []
    for seed in range(40):
        target = int(n_patches * np.random.default_rng(seed).uniform(0.1, 0.5))
        blocks = generator.blocks(target, seed)
        mask = generator(target, seed)
        painted = torch.zeros(grid, dtype=torch.bool)
        for top, left, h, w in blocks:
            assert h * w >= 4
            assert 0.3 <= h / w <= 1 / 0.3 + 1e-9
            assert top >= 0 and left >= 0 and top + h <= grid[0] and left + w <= grid[1]
            painted[top : top + h, left : left + w] = True
        assert torch.equal(painted, mask), "the mask is the union of its blocks"
        count = int(mask.sum())
        assert count <= target
        shortfalls.append(target - count)
    # blocks are >= 4 patches, so the last few patches may stay unfilled, as in the reference
    assert np.mean(shortfalls) <= 3
    assert max(shortfalls) <= 0.25 * n_patches * 0.5


def test_single_block_cap() -> None:
    generator = BlockMaskGenerator((16, 16), max_patches=10)
    for seed in range(20):
        mask = torch.zeros(16, 16, dtype=torch.bool)
        for top, left, h, w in generator.blocks(100, seed):
            before = int(mask.sum())
            mask[top : top + h, left : left + w] = True
            # the cap bounds the patches a block adds (it may overlap earlier blocks)
            assert 1 <= int(mask.sum()) - before <= 10
    assert not BlockMaskGenerator((8, 8))(0, 0).any()


@pytest.mark.parametrize("n_images", [1, 2, 7, 64])
def test_sample_masks_half_masked_with_stratified_ratios(n_images: int) -> None:
    grid, low, high = (16, 16), 0.1, 0.5
    masks = sample_masks(
        n_images, grid, 0.5, (low, high), generator=torch.Generator().manual_seed(3)
    )
    assert masks.shape == (n_images, 256) and masks.dtype == torch.bool
    counts = masks.sum(dim=1)
    n_masked = int(n_images * 0.5)
    assert int((counts > 0).sum()) == n_masked
    bounds = np.linspace(low, high, n_masked + 1)
    # sorted counts sit in the sorted strata: at most the stratum's top, near its bottom
    for i, count in enumerate(sorted(c for c in counts.tolist() if c > 0)):
        assert count <= int(256 * bounds[i + 1])
        assert count >= int(256 * bounds[i]) - 16
        assert low * 256 - 16 <= count <= high * 256


def test_masked_images_are_shuffled() -> None:
    firsts = {int(sample_masks(8, (16, 16), generator=seed)[0].any()) for seed in range(20)}
    assert firsts == {0, 1}


def test_deterministic_per_seed() -> None:
    a = sample_masks(16, (16, 16), generator=torch.Generator().manual_seed(7))
    b = sample_masks(16, (16, 16), generator=torch.Generator().manual_seed(7))
    c = sample_masks(16, (16, 16), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(
        sample_masks(8, (16, 16), generator=5), sample_masks(8, (16, 16), generator=5)
    )
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert torch.equal(
        sample_masks(8, (16, 16), generator=rng_a), sample_masks(8, (16, 16), generator=rng_b)
    )


def test_probability_extremes_and_empty_batch() -> None:
    assert not sample_masks(6, (8, 8), mask_probability=0.0, generator=0).any()
    assert sample_masks(6, (8, 8), mask_probability=1.0, generator=0).any(dim=1).all()
    assert sample_masks(0, (8, 8), generator=0).shape == (0, 64)


def test_flatten_masks() -> None:
    masks = torch.zeros(3, 6, dtype=torch.bool)
    masks[0, [1, 4]] = True
    masks[2, [0, 2, 3, 5]] = True
    flat = flatten_masks(masks)
    assert flat.n_masked_patches == 6
    assert flat.indices.tolist() == [1, 4, 12, 14, 15, 17]
    torch.testing.assert_close(flat.weights, torch.tensor([0.5, 0.5, 0.25, 0.25, 0.25, 0.25]))
    tokens = torch.arange(18).reshape(3, 6)
    assert torch.equal(tokens.flatten()[flat.indices], tokens[masks])


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="ratio_range"):
        sample_masks(4, (8, 8), ratio_range=(0.6, 0.2))
    with pytest.raises(ValueError, match="mask_probability"):
        sample_masks(4, (8, 8), mask_probability=2.0)
    with pytest.raises(ValueError, match="grid"):
        sample_masks(4, (8, 8), mask_generator=BlockMaskGenerator((4, 4)))
    with pytest.raises(ValueError, match="bool"):
        flatten_masks(torch.zeros(2, 3))
