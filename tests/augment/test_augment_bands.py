"""Per-band augmentations for float band images: the RGB-only ones replaced or refused."""
import pytest
import torch

from hybridssl.augment.config import load_augment_config
from hybridssl.augment.bands import BandEvalTransform, BandTwoViews, RandomBandMean, RandomBandScale
from hybridssl.config import ConfigError

OVERRIDES = ["crop_size=16", "resize_size=16", "blur_kernel=3", "solarize_p=[0.0,0.0]"]


def bands(n=5, b=4, size=16) -> torch.Tensor:
    return torch.randn(b, n, size, size, generator=torch.Generator().manual_seed(0)) * 2 + 1


def test_band_scale_multiplies_each_band_by_its_own_factor_within_the_range():
    x = bands().abs() + 0.5
    y = RandomBandScale(0.3, p=1.0)(x)
    ratio = y / x
    per_band = ratio.flatten(2)
    assert torch.allclose(per_band, per_band[..., :1].expand_as(per_band), rtol=1e-5)  # one factor per band
    factors = per_band[..., 0]
    assert ((factors >= 0.7 - 1e-6) & (factors <= 1.3 + 1e-6)).all() and factors.std() > 0.01
    assert (y > 1.0).any() and (y.max() > x.max() * 0.7)  # nothing clipped to [0, 1]


def test_band_mean_gives_every_band_the_mean_over_bands():
    x = bands()
    y = RandomBandMean(p=1.0)(x)
    assert torch.allclose(y, x.mean(1, keepdim=True).expand_as(x))
    assert torch.equal(RandomBandMean(p=0.0)(x), x)


@pytest.mark.parametrize("n", [1, 5])
def test_two_views_and_eval_keep_the_band_count(n):
    cfg = load_augment_config("galaxy", OVERRIDES)
    v1, v2 = BandTwoViews(cfg, n)(bands(n))
    assert v1.shape == v2.shape == (4, n, 16, 16) and torch.isfinite(v1).all() and not torch.equal(v1, v2)
    x = bands(n)
    assert torch.allclose(BandEvalTransform(cfg, n)(x), x, atol=1e-5)  # already normalised: geometry only


def test_solarize_and_8_bit_batches_are_refused_with_a_clear_message():
    with pytest.raises(ConfigError, match=r"solarize_p.*5 float bands"):
        BandTwoViews(load_augment_config("galaxy", ["crop_size=16", "resize_size=16", "blur_kernel=3",
                                                  "solarize_p=[0.0,0.2]"]), 5)
    views = BandTwoViews(load_augment_config("galaxy", OVERRIDES), 5)
    with pytest.raises(ValueError, match=r"float \(B, 5, H, W\).*uint8"):
        views(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
