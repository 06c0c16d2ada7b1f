"""Whether a volunteer could see a galaxy's ring in its image: the ring task's label.

A ring is seen when, after the survey PSF, it stands out from the disk and bulge light at its
radius (contrast), rises above the noise summed along it (S/N), its gap is resolved along the
minor axis, and the disk is face-on enough to look like a ring rather than a line. The same
light model as ``render`` (exponential disk, Sérsic bulge, Gaussian ring), azimuthally
averaged in the disk plane; lengths are fractions of the image width, counts per 64 px pixel.
"""
from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from data_prep.synthetic.surveys import SurveyStyle

MIN_CONTRAST = 1.0        # ring peak over the smooth light at its radius: it doubles the light there
MIN_SNR = 20.0            # summed over the ring's band
MIN_RESOLUTION = 1.5      # ring radius along the minor axis, in PSF FWHM: the gap must show
MAX_INCLINATION = 70.0    # degrees
RING_KINDS = ("ring_inner", "ring_outer")


def _sersic_sb(r, flux, re, n):
    """Surface brightness of a Sérsic profile exp(-b (r/re)^(1/n)) holding ``flux``, b = 2n - 1/3."""
    b = 2 * n - 1 / 3
    log_norm = np.log(2 * np.pi * n * re ** 2) + gammaln(2 * n) - 2 * n * np.log(b)
    return flux * np.exp(-b * (r / re) ** (1 / n) - log_norm)


def _seen(g, style: SurveyStyle, kind: str, flux):
    """(contrast, snr, resolved) of one ring kind; zero where the galaxy has none."""
    r0, h, fd = g[kind + "_r"], g["disk_h"], 1 - g["bulge_frac"]
    width = np.hypot(g["ring_width"] * r0, g["psf_fwhm"] / 2.355)          # ring sigma after the PSF
    ring_flux = flux * fd * g[kind]
    ring_sb = ring_flux / (2 * np.pi * r0 * np.sqrt(2 * np.pi) * width)
    disk_flux = flux * np.maximum(fd * (1 - g["ring_inner"] - g["ring_outer"]), 0)
    smooth_sb = (disk_flux / (2 * np.pi * h ** 2) * np.exp(-r0 / h)
                 + _sersic_sb(r0, flux * g["bulge_frac"], g["bulge_re"], g["sersic_n"]))
    band = 2 * np.pi * r0 * 2 * width                                       # +-1 sigma, disk plane
    pixels = band * g["disk_q"] * 64 ** 2
    signal = 0.68 * ring_flux
    snr = signal / np.sqrt(signal + smooth_sb * band + pixels * (style.sky + style.read_noise ** 2))
    resolved = r0 * g["disk_q"] >= MIN_RESOLUTION * g["psf_fwhm"]
    return ring_sb / np.maximum(smooth_sb, 1e-30), snr, resolved


def ring_visibility(g: dict[str, np.ndarray], style: SurveyStyle) -> None:
    """Set ``ring_seen`` (0/1: some ring is seen) and the ``ring_contrast``, ``ring_snr`` of the
    higher-contrast ring (0 without a ring)."""
    flux = 10 ** (-0.4 * (g["mag"] - style.zeropoint))
    face_on = g["inclination"] <= MAX_INCLINATION
    contrast, snr, seen = [], [], []
    for kind in RING_KINDS:
        c, s, resolved = _seen(g, style, kind, flux)
        has = g[kind] > 0
        contrast.append(np.where(has, c, 0.0))
        snr.append(np.where(has, s, 0.0))
        seen.append(has & face_on & resolved & (c >= MIN_CONTRAST) & (s >= MIN_SNR))
    best = np.argmax(contrast, axis=0)[None]
    g["ring_contrast"] = np.take_along_axis(np.array(contrast), best, 0)[0]
    g["ring_snr"] = np.take_along_axis(np.array(snr), best, 0)[0]
    g["ring_seen"] = np.any(seen, axis=0).astype(np.int8)
