"""Imaging styles of the surveys behind each Galaxy Zoo campaign.

Lengths are fractions of the image width, so a galaxy looks the same at 64 or 256 px. Counts
(``zeropoint``, ``sky``) are per pixel of a 64 px image; the renderer rescales the sky for
other sizes so the signal-to-noise per unit area does not depend on the pixel count.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SurveyStyle:
    name: str
    z_range: tuple[float, float]      # redshifts of the targets
    mag_at_zref: float                # typical apparent magnitude at z_ref
    z_ref: float
    mag_limit: float                  # faintest target kept by the survey selection
    zeropoint: float                  # magnitude of 1 count in total
    sky: float                        # sky counts per pixel (64 px image)
    read_noise: float
    psf: str                          # "double_gaussian" (ground) or "gaussian" (space)
    psf_fwhm: tuple[float, float]     # range of seeing, fraction of image width
    size_scale: float                 # apparent size of a reference galaxy, fraction of width
    size_z_power: float               # apparent size ~ (z_ref / z) ** power
    stretch: float                    # asinh softening, in sky-noise units
    white: float                      # display white point, in asinh units
    band_gain: tuple[float, float, float]  # display colour balance of g, r, z


SURVEYS: dict[str, SurveyStyle] = {s.name: s for s in [
    # SDSS: shallow, blurry, galaxies cut out at a size that fits them (GZ2).
    SurveyStyle("sdss", (0.01, 0.15), 16.2, 0.06, 17.7, 27.6, 60.0, 6.0, "double_gaussian", (0.035, 0.05),
                0.15, 0.3, 2.0, 5.0, (1.15, 1.0, 0.9)),
    # DECaLS DR1/2 and DR5: deeper and sharper than SDSS, same targets (GZ DECaLS).
    SurveyStyle("decals", (0.01, 0.15), 16.5, 0.06, 17.8, 28.8, 60.0, 5.0, "double_gaussian", (0.02, 0.03),
                0.15, 0.3, 2.5, 5.0, (1.1, 1.0, 0.85)),
    # DESI Legacy DR8: a little deeper again, more and fainter targets (GZ DESI).
    SurveyStyle("desi", (0.01, 0.2), 16.9, 0.07, 19.0, 29.0, 60.0, 5.0, "double_gaussian", (0.018, 0.028),
                0.14, 0.35, 2.5, 5.0, (1.1, 1.0, 0.85)),
    # HST COSMOS: sharp, intermediate redshift, fainter and smaller (GZ Hubble).
    SurveyStyle("hubble", (0.2, 1.4), 21.0, 0.5, 23.5, 33.0, 40.0, 5.0, "gaussian", (0.01, 0.016),
                0.11, 0.5, 2.5, 4.0, (1.0, 1.0, 1.0)),
    # HST CANDELS: deepest and most distant, small clumpy galaxies, noisy (GZ CANDELS).
    SurveyStyle("candels", (0.5, 3.0), 23.0, 1.2, 25.0, 34.6, 40.0, 5.0, "gaussian", (0.012, 0.018),
                0.09, 0.5, 2.5, 4.0, (1.0, 1.0, 1.0)),
]}

# Survey of each gz_evo_v0.1 campaign; a campaign not listed is imaged DECaLS-like.
CAMPAIGN_SURVEY = {"gz2": "sdss", "dr12": "decals", "dr5": "decals", "dr8": "desi",
                   "hubble": "hubble", "candels": "candels"}
DEFAULT_SURVEY = "decals"


def survey_of(campaign: str) -> SurveyStyle:
    return SURVEYS[CAMPAIGN_SURVEY.get(campaign, DEFAULT_SURVEY)]
