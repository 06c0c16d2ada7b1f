"""Float band storage without training: 16-bit PNG/TIFF at full depth, band counts checked per image,
bands without signal and blank images refused, 8- and 16-bit files on one scale (issue 24)."""
import io

import cv2
import numpy as np
import pytest

from data_prep.bands import band_stats, prepare_bands
from hybridssl.storage.images import ImageError


def test_a_16_bit_grey_png_is_one_band_at_full_depth(tmp_path):
    rng = np.random.default_rng(0)
    counts = (300 + rng.poisson(40, (16, 16)) + np.pad(np.full((4, 4), 3000), 6)).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "g.png"), counts)
    bands = band_stats([tmp_path / "g.png"], 8, "linear")
    # 16-bit values as fractions of 65535 (issue 24: one brightness scale for 8- and 16-bit files)
    assert bands["n_bands"] == 1 and bands["median"] == [float(np.median(counts)) / 65535]
    stored = np.load(io.BytesIO(prepare_bands(tmp_path / "g.png", 16, bands)))
    want = (counts / 65535 - bands["median"][0]) / bands["scale"][0]  # linear: no asinh, no row flip outside FITS
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


def _fits(path, planes):
    from astropy.io import fits
    fits.PrimaryHDU(np.asarray(planes, dtype=np.float32)).writeto(path)
    return path


def test_a_band_without_coverage_anywhere_is_an_error_naming_it(tmp_path):
    """np.std([]) is NaN, and NaN is truthy: such a band used to store NaN in every pixel."""
    rng = np.random.default_rng(2)
    paths = [_fits(tmp_path / f"{i}.fits", [rng.normal(100, 5, (16, 16)), np.zeros((16, 16)),
                                            np.full((16, 16), np.nan)]) for i in range(3)]
    with pytest.raises(ImageError, match="band 1 has no finite, non-zero pixel in any of the 3 images"):
        band_stats(paths, 8, "asinh")


@pytest.mark.parametrize("fill", [0.0, np.nan, np.inf])
def test_an_image_without_a_valid_pixel_is_rejected_like_rgb(tmp_path, fill):
    rng = np.random.default_rng(3)
    good = [_fits(tmp_path / f"{i}.fits", rng.normal(100, 5, (2, 16, 16))) for i in range(2)]
    bands = band_stats(good, 8, "asinh")
    blank = _fits(tmp_path / "blank.fits", np.full((2, 16, 16), fill))
    with pytest.raises(ImageError, match=r"no valid pixels \(all NaN, inf or zero\).*blank\.fits"):
        prepare_bands(blank, 16, bands)
    assert np.isfinite(np.load(io.BytesIO(prepare_bands(good[0], 16, bands)))).all()


def test_8_and_16_bit_pngs_of_one_scene_are_stored_alike(tmp_path):
    """Before the fix a 16-bit PNG was stored ~257x (asinh: ~10x) brighter than its 8-bit copy."""
    rng = np.random.default_rng(4)
    scene = np.clip(rng.normal(0.2, 0.03, (16, 16, 3)) + np.pad(np.full((4, 4, 3), 0.6), ((6, 6), (6, 6), (0, 0))),
                    0, 1)
    assert cv2.imwrite(str(tmp_path / "s16.png"), (scene * 65535).round().astype(np.uint16))
    assert cv2.imwrite(str(tmp_path / "s8.png"), (scene * 255).round().astype(np.uint8))
    paths = [tmp_path / "s16.png", tmp_path / "s8.png"]
    bands = band_stats(paths, 8, "asinh")
    a, b = (np.load(io.BytesIO(prepare_bands(p, 16, bands))).astype(np.float64) for p in paths)
    assert np.abs(a - b).max() < 0.2 < np.abs(a).max()  # 8-bit rounding apart, not a scale apart
