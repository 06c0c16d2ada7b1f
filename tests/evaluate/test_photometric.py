import numpy as np
import pytest

from factories import write_shards
from hybridssl.evaluate.features import d4_views
from hybridssl.evaluate.photometric import NAMES, photometric_features, pixel_baselines

import torch


def galaxy(flux=200.0, width=3.0, rgb=(1.0, 1.0, 1.0), size=32, sky=10.0, centre=(15.5, 15.5)):
    """A round Gaussian galaxy on a flat sky, uint8 (3, size, size)."""
    yy, xx = np.mgrid[:size, :size]
    profile = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * width ** 2))
    img = sky + flux * profile[None] * np.asarray(rgb)[:, None, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def feature(images, name):
    return photometric_features(np.stack(images))[:, NAMES.index(name)]


def test_a_brighter_copy_has_more_flux_and_a_brighter_centre():
    faint, bright = galaxy(flux=80), galaxy(flux=200)
    assert np.diff(feature([faint, bright], "log_flux")) > 0.5
    assert np.diff(feature([faint, bright], "central_brightness")) > 0


def test_a_redder_copy_has_a_larger_first_colour_and_a_bluer_one_a_larger_second():
    grey, red, blue = galaxy(), galaxy(rgb=(1.0, 0.6, 0.6)), galaxy(rgb=(0.6, 0.6, 1.0))
    c01 = feature([grey, red], "colour_01")
    assert c01[1] > c01[0] + 0.2
    c12 = feature([grey, blue], "colour_12")
    assert c12[1] < c12[0] - 0.2  # green over blue falls when blue rises
    first, last = feature([grey, red, blue], "central_first"), feature([grey, red, blue], "central_last")
    assert first[1] == first[0] and last[1] < last[0]  # the red copy lost green and blue light only
    assert first[2] < first[0] and last[2] == last[0]


def test_a_more_concentrated_profile_has_a_larger_concentration_and_a_smaller_half_light_radius():
    core_and_halo = np.clip(galaxy(flux=120, width=1.2).astype(int) + galaxy(flux=40, width=6.0, sky=0), 0, 255)
    extended = galaxy(flux=120, width=5.0)
    conc = feature([extended, core_and_halo.astype(np.uint8)], "concentration")
    assert conc[1] > conc[0]
    r50 = feature([galaxy(width=1.5), galaxy(width=5.0)], "r50")
    assert r50[0] < r50[1]


def test_the_sky_is_subtracted_so_a_brighter_sky_leaves_the_flux_alone():
    same = feature([galaxy(sky=5.0), galaxy(sky=40.0)], "log_flux")
    assert same[0] == pytest.approx(same[1], abs=0.05)


def test_rotations_and_flips_leave_every_number_unchanged():
    companion = galaxy(flux=60, width=1.5, sky=0.0, centre=(23.0, 11.0)).astype(int)
    img = np.clip(galaxy(rgb=(1.0, 0.8, 0.5), centre=(13.0, 18.0), width=2.5) + companion, 0, 255).astype(np.uint8)
    views = np.stack([v.numpy() for v in d4_views(torch.from_numpy(img))])
    assert len({v.tobytes() for v in views}) == 8  # no symmetry of its own: eight different images
    x = photometric_features(views)
    np.testing.assert_allclose(x, np.repeat(x[:1], 8, axis=0), rtol=1e-12, atol=1e-12)


def test_not_rgb_is_a_clear_error():
    with pytest.raises(ValueError, match=r"RGB images \(n, 3, H, W\)"):
        photometric_features(np.zeros((2, 1, 32, 32), dtype=np.uint8))


def test_pixel_baselines_of_a_shard_set_in_its_order(tmp_path):
    shards = write_shards(tmp_path / "s", 10, labelled=False, n_shards=2, image_size=32)
    ids, feats = pixel_baselines(shards, batch_size=4)
    assert len(ids) == 10 and feats["photometric"].shape == (10, 8) and feats["colour"].shape == (10, 2)
    np.testing.assert_array_equal(feats["colour"], feats["photometric"][:, 3:5])
    assert np.isfinite(feats["photometric"]).all()
