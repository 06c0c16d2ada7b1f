"""16-bit PNG/TIFF (grey and RGB): scaled to 8 bits by the image's maximum, never clipped.

The images look like a 12-bit camera's galaxy cutout in a 16-bit file: a sky background, an
exponential-disc galaxy brighter in red than in blue, and Poisson noise on every pixel.
"""
import cv2
import numpy as np
import pytest

from hybridssl.storage.images import ImageError, load_image, prepare_image, decode_image

SIZE = 64


def galaxy_counts(rng, bands=(1.0, 0.8, 0.5), sky=300.0, peak=3500.0) -> np.ndarray:
    """(H, W, len(bands)) Poisson counts, all below 4096 (12 bits)."""
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    r = np.hypot(xx / 1.0, yy / 0.6)
    disc = np.exp(-r / 6.0)
    mean = np.stack([sky + peak * b * disc for b in bands], -1)
    return np.minimum(rng.poisson(mean), 4095).astype(np.uint16)


def write(path, counts: np.ndarray) -> None:
    """Through OpenCV, which writes 16-bit PNG and TIFF (it takes BGR channel order)."""
    assert cv2.imwrite(str(path), counts[..., ::-1] if counts.shape[-1] == 3 else counts[..., 0])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("bands", [(1.0, 0.8, 0.5), (1.0,)], ids=["rgb", "grey"])
def test_a_12_bit_galaxy_in_a_16_bit_file_keeps_its_tones(tmp_path, suffix, bands):
    counts = galaxy_counts(np.random.default_rng(0), bands)
    write(tmp_path / f"g{suffix}", counts)
    img = load_image(tmp_path / f"g{suffix}")
    assert img.dtype == np.uint8 and img.shape == (SIZE, SIZE, 3)
    src = (np.repeat(counts, 3, -1) if len(bands) == 1 else counts).astype(np.float64)
    assert (img == 255).sum() <= 3, "saturated"  # only the brightest pixel(s) reach white
    assert len(np.unique(img)) > 100  # 8 bits of tones, not the 16 levels of the high byte
    np.testing.assert_allclose(img, 255 * src / src.max(), atol=0.51)  # linear, by the maximum
    sky, core = img[:4, :4].mean(), img[SIZE // 2 - 2:SIZE // 2 + 2, SIZE // 2 - 2:SIZE // 2 + 2].mean()
    assert 10 < sky < 40 and core > 5 * sky  # sky 300 of 4095 counts, not clipped white
    if len(bands) == 3:  # colour balance between channels survives (RGB order, not OpenCV's BGR)
        centre = img[SIZE // 2 - 4:SIZE // 2 + 4, SIZE // 2 - 4:SIZE // 2 + 4].reshape(-1, 3).mean(0)
        assert centre[0] > centre[1] > centre[2]
        assert centre[2] / centre[0] == pytest.approx(src[28:36, 28:36, 2].mean() / src[28:36, 28:36, 0].mean(),
                                                      rel=0.02)


def test_a_16_bit_image_goes_through_prepare_and_a_cut_one_is_an_image_error(tmp_path):
    write(tmp_path / "g.png", galaxy_counts(np.random.default_rng(1)))
    img = decode_image(prepare_image(tmp_path / "g.png", 32, "png"))
    assert img.shape == (32, 32, 3) and 150 < img.max() < 255 and img[14:18, 14:18, 0].mean() > 4 * img[:4, :4, 0].mean()
    data = (tmp_path / "g.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(tmp_path / "cut.png")
