"""Float band storage without training: 16-bit PNG/TIFF at full depth, band counts checked per image."""
import io

import cv2
import numpy as np
import pytest

from data_prep.bands import band_stats, prepare_bands
from hybridssl.images import ImageError


def test_a_16_bit_grey_png_is_one_band_at_full_depth(tmp_path):
    rng = np.random.default_rng(0)
    counts = (300 + rng.poisson(40, (16, 16)) + np.pad(np.full((4, 4), 3000), 6)).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "g.png"), counts)
    bands = band_stats([tmp_path / "g.png"], 8, "linear")
    assert bands["n_bands"] == 1 and bands["median"] == [float(np.median(counts))]
    stored = np.load(io.BytesIO(prepare_bands(tmp_path / "g.png", 16, bands)))
    want = (counts - bands["median"][0]) / bands["scale"][0]  # linear: no asinh, no row flip outside FITS
    np.testing.assert_allclose(stored[0].astype(np.float64), want, rtol=1e-3, atol=1e-3)
    assert len(np.unique(stored)) > 30  # the 16-bit tones survive (8 bits by max would give a handful)


def test_an_image_with_another_band_count_is_an_image_error_naming_it(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 65535, (16, 16, 3), dtype=np.uint16)
    for name in ("a.tif", "b.tif"):
        assert cv2.imwrite(str(tmp_path / name), rgb)
    assert cv2.imwrite(str(tmp_path / "grey.tif"), rgb[..., 0])
    bands = band_stats([tmp_path / n for n in ("a.tif", "b.tif", "grey.tif")], 8, "asinh")
    assert bands["n_bands"] == 3  # the most common count in the sample
    with pytest.raises(ImageError, match=r"1 bands, the set has 3.*grey\.tif"):
        prepare_bands(tmp_path / "grey.tif", 16, bands)
