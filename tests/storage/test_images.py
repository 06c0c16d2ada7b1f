"""Image loading: real JPEG/PNG/FITS, content-sniffed formats, corrupt files, the FITS stretch."""
import io
import shutil

import numpy as np
import pytest
from astropy.io import fits
from testpaths import FIXTURES
from PIL import Image

from hybridssl.storage.images import (ImageError, decode_image, encode_image, fits_to_rgb, load_image, prepare_image,
                              resize_square)

FITS_DIR = FIXTURES / "decals_fits"
GZ2_JPG = FIXTURES / "gz_vote_tables" / "gz2" / "images" / "16126.jpg"
DR5_PNG = next((FIXTURES / "gz_vote_tables" / "gz_decals" / "dr5").rglob("*.png"))


def test_real_jpeg_and_png_load_as_uint8_rgb():
    for path in (GZ2_JPG, DR5_PNG):
        img = load_image(path)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.std() > 5  # a galaxy, not a blank


def test_png_named_jpg_decodes_by_content(tmp_path):
    fake = tmp_path / "really_png.jpg"
    shutil.copy(DR5_PNG, fake)
    np.testing.assert_array_equal(load_image(fake), load_image(DR5_PNG))


@pytest.mark.parametrize("name,content,match", [
    ("empty.jpg", b"", "empty"),
    ("noise.jpg", bytes(range(256)) * 4, "not a decodable image"),
    ("half.jpg", None, "truncated"),
])
def test_bad_files_raise_image_error_naming_the_file(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(GZ2_JPG.read_bytes()[: GZ2_JPG.stat().st_size // 2] if content is None else content)
    with pytest.raises(ImageError, match=match) as e:
        load_image(path)
    assert name in str(e.value)


def test_missing_file_and_broken_fits(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")
    broken = tmp_path / "cut.fits"
    broken.write_bytes((FITS_DIR / "example_a.fits").read_bytes()[:5000])
    with pytest.raises(ImageError, match="cut.fits"):
        load_image(broken)


@pytest.mark.parametrize("name", ["example_a.fits", "example_bad_pix.fits"])
def test_real_decals_fits_become_rgb(name):
    img = load_image(FITS_DIR / name)
    assert img.shape == (424, 424, 3) and img.dtype == np.uint8
    centre = img[180:244, 180:244].astype(float).mean()
    corner = img[:40, :40].astype(float).mean()
    assert centre > corner + 20  # the galaxy at the centre stands out over the sky


def test_bad_pix_file_no_coverage_pixels_become_sky_not_noise():
    data = fits.getdata(FITS_DIR / "example_bad_pix.fits").astype(np.float64)
    no_g = data[0] == 0  # pixels without g-band coverage
    assert no_g.mean() > 0.5
    img = load_image(FITS_DIR / "example_bad_pix.fits")
    blue = np.flipud(img[..., 2])  # B = g band; back to FITS row order
    assert blue[no_g].max() == 0  # set to the sky level, which maps to black


def test_nan_and_inf_pixels_are_replaced_and_the_rest_kept():
    data = fits.getdata(FITS_DIR / "example_a.fits").astype(np.float32)
    clean = fits_to_rgb(data)
    spoiled = data.copy()
    spoiled[:, 10:40, 10:40] = np.nan
    spoiled[1, 300, 300] = np.inf
    out = fits_to_rgb(spoiled)
    assert out.dtype == np.uint8
    flipped = np.flipud(out)
    assert flipped[10:40, 10:40].max() == 0  # bad block shown as sky
    mask = np.ones((424, 424), bool)
    mask[10:40, 10:40] = False
    mask[300, 300] = False
    diff = np.abs(np.flipud(clean).astype(int) - flipped.astype(int))[mask]
    assert diff.mean() < 1.0


def test_fits_band_order_orientation_and_layouts():
    cube = np.zeros((3, 8, 8))
    cube += np.random.default_rng(0).normal(0, 0.01, cube.shape)
    cube[2, 0, 0] = 5.0  # bright z-band pixel in FITS row 0 (the bottom of the sky image)
    rgb = fits_to_rgb(cube)
    assert rgb[-1, 0, 0] == 255 and rgb[-1, 0, 1] < 50 and rgb[-1, 0, 2] < 50  # red, bottom-left
    np.testing.assert_array_equal(fits_to_rgb(np.moveaxis(cube, 0, -1)), rgb)
    assert (fits_to_rgb(cube, "linear") <= rgb).all()  # asinh lifts faint flux
    with pytest.raises(ImageError, match="no valid pixels"):
        fits_to_rgb(np.full((3, 8, 8), np.nan))


def test_resize_crops_centre_and_encodings_round_trip():
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 10:50] = 200  # the centre square is bright, the side strips dark
    small = resize_square(img, 16)
    assert small.shape == (16, 16, 3) and small.min() > 150
    png = encode_image(small, "png")
    np.testing.assert_array_equal(decode_image(png), small)
    jpg = encode_image(small, "jpg", jpeg_quality=90)
    assert Image.open(io.BytesIO(jpg)).format == "JPEG"
    assert np.abs(decode_image(jpg).astype(int) - small).max() < 20
    with pytest.raises(ValueError, match="tiff"):
        encode_image(small, "tiff")


def test_prepare_image_resizes_once_to_the_requested_size():
    data = prepare_image(DR5_PNG, 48, "png")
    assert decode_image(data).shape == (48, 48, 3)
