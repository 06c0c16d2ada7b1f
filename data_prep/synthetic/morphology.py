"""Sample the true physical parameters of galaxies, the same way for every survey.

A survey only chooses which redshifts and magnitudes are observed; what a galaxy is made of
depends on its redshift alone (distant galaxies are clumpier, more disturbed, less often
barred or spiral), so no population is tuned per task. Lengths are fractions of the image
width (see ``surveys``). The result is a dict of numpy arrays, one row per galaxy; ``(n, K)``
arrays hold up to K clumps, neighbours or stars, unused slots having zero flux.
"""
from __future__ import annotations

import numpy as np

from data_prep.synthetic.rings import ring_visibility
from data_prep.synthetic.surveys import SurveyStyle

MAX_CLUMPS, MAX_STARS, MAX_NEIGHBOURS = 8, 4, 2
ARM_COUNTS, ARM_COUNT_P = np.array([1, 2, 3, 4, 5, 6]), [0.06, 0.5, 0.2, 0.12, 0.07, 0.05]
MERGER_P = np.array([0.86, 0.06, 0.04, 0.04])  # none, minor, major disturbance, merger (z=0)
ARTIFACT_NONE, ARTIFACT_STAR, ARTIFACT_TRAIL, ARTIFACT_COLUMNS = 0, 1, 2, 3

# Galaxy parameters written to catalogs as ``true_<name>``.
TRUTH_COLUMNS = ["disk", "bulge_frac", "sersic_n", "axis_ratio", "inclination", "edge_on", "bar",
                 "arms", "arm_strength", "pitch", "ring", "ring_inner", "ring_outer", "ring_seen",
                 "ring_contrast", "ring_snr", "clumps", "clump_frac", "merger", "artifact", "redshift", "mag",
                 "size", "psf_fwhm", "snr", "clarity"]


def _redshifts(rng, n, lo, hi):
    """Volume-weighted (p ~ z^2) between lo and hi."""
    return np.cbrt(lo ** 3 + rng.random(n) * (hi ** 3 - lo ** 3))


def _magnitudes(rng, z, style: SurveyStyle):
    """Distance modulus plus scatter, resampled until brighter than the survey limit."""
    def draw(zz):
        return style.mag_at_zref + 5 * np.log10(zz / style.z_ref) + rng.normal(0, 0.9, len(zz))
    mag = draw(z)
    for _ in range(50):
        bad = mag > style.mag_limit
        if not bad.any():
            break
        z[bad] = _redshifts(rng, bad.sum(), *style.z_range)
        mag[bad] = draw(z[bad])
    return np.minimum(mag, style.mag_limit), z


def sample_galaxies(rng: np.random.Generator, n: int, style: SurveyStyle) -> dict[str, np.ndarray]:
    u = rng.random
    z = _redshifts(rng, n, *style.z_range)
    mag, z = _magnitudes(rng, z, style)
    hiz = np.clip((z - 0.3) / 1.5, 0, 1)          # 0 nearby .. 1 at z >~ 1.8
    g: dict[str, np.ndarray] = {"redshift": z, "mag": mag}

    disk = u(n) < 0.55 + 0.25 * hiz
    g["disk"] = disk.astype(np.int8)
    g["bulge_frac"] = np.where(disk, rng.beta(1.5, 3.5, n), 1.0)
    g["sersic_n"] = np.where(disk, np.clip(1 + 2.5 * g["bulge_frac"] + rng.normal(0, 0.3, n), 0.8, 4.5),
                             rng.uniform(2.5, 4.5, n))
    r50 = style.size_scale * rng.lognormal(0, 0.3, n) * (style.z_ref / z) ** style.size_z_power
    g["size"] = np.clip(r50, 0.012, 0.18)
    g["disk_h"] = g["size"] / 1.68
    g["bulge_re"] = np.where(disk, g["size"] * rng.uniform(0.2, 0.5, n), g["size"])
    g["pa"] = rng.uniform(0, np.pi, n)

    q_sph = 1 - 0.7 * rng.beta(1.5, 2.5, n)
    cos_i = np.where(disk, u(n), q_sph)          # a spheroid's flattening read as an inclination
    g["inclination"] = np.degrees(np.arccos(cos_i))
    q0 = rng.uniform(0.08, 0.18, n)              # intrinsic thickness of the disk
    q_disk = np.sqrt(cos_i ** 2 + q0 ** 2 * (1 - cos_i ** 2))
    g["disk_q"] = q_disk
    g["bulge_q"] = np.where(disk, rng.uniform(0.65, 1.0, n), q_sph)
    g["axis_ratio"] = np.where(disk, np.maximum(q_disk, g["bulge_frac"] * g["bulge_q"]), q_sph)
    g["edge_on"] = (disk & (g["inclination"] > 75)).astype(np.int8)
    g["dust"] = np.where(disk, rng.uniform(0.3, 1.0, n), 0.0)

    has_bar = disk & (g["bulge_frac"] < 0.6) & (u(n) < 0.5 * (1 - 0.8 * hiz))
    g["bar"] = np.where(has_bar, rng.uniform(0.25, 1.0, n), 0.0)
    g["bar_len"] = g["disk_h"] * rng.uniform(1.0, 2.0, n)
    g["bar_width"] = rng.uniform(0.25, 0.4, n)
    g["bar_angle"] = rng.uniform(0, np.pi, n)

    has_arms = disk & (u(n) < 0.9 * (1 - g["bulge_frac"]) ** 0.7 * (1 - 0.6 * hiz))
    g["arms"] = np.where(has_arms, rng.choice(ARM_COUNTS, n, p=ARM_COUNT_P), 0)
    g["arm_strength"] = np.where(has_arms, rng.uniform(0.3, 1.0, n), 0.0)
    # Hubble sequence: bigger bulges, tighter arms.
    g["pitch"] = np.where(has_arms, np.clip(30 - 35 * g["bulge_frac"] + rng.normal(0, 7, n), 6, 45), 0.0)
    g["arm_phase"] = rng.uniform(0, 2 * np.pi, n)

    # Rings sit at resonances, so more often in barred disks; they hold a few to ~30% of the disk's
    # light (Buta & Combes 1996), gathered from the disk just inside them (the gap, see ``render``).
    ringed = disk & (u(n) < 0.18 + 0.25 * has_bar)
    kind = u(n)                                  # inner, outer or both
    g["ring_inner"] = np.where(ringed & (kind < 0.7), 10 ** rng.uniform(-1.4, -0.5, n), 0.0)
    g["ring_outer"] = np.where(ringed & (kind > 0.5), 10 ** rng.uniform(-1.4, -0.5, n), 0.0)
    g["ring_inner_r"] = np.where(has_bar, g["bar_len"] * rng.uniform(1.0, 1.15, n),
                                 g["disk_h"] * rng.uniform(1.0, 1.8, n))
    g["ring_outer_r"] = np.maximum(g["disk_h"] * rng.uniform(2.2, 3.0, n), 1.6 * g["ring_inner_r"])
    g["ring"] = ringed.astype(np.int8)             # has one, seen or not (``ring_seen``: seen)
    g["ring_width"] = rng.uniform(0.05, 0.15, n)   # Gaussian sigma of the ring, fraction of its radius

    clumpy = disk & (u(n) < 0.05 + 0.8 * hiz)
    g["clumps"] = np.where(clumpy, np.minimum(1 + rng.poisson(2.5, n), MAX_CLUMPS), 0)
    g["clump_frac"] = np.where(clumpy, rng.uniform(0.15, 0.5, n), 0.0)
    slot = np.arange(MAX_CLUMPS)[None, :] < g["clumps"][:, None]
    g["clump_flux"] = np.where(slot, rng.dirichlet(np.ones(MAX_CLUMPS), n), 0.0)
    g["clump_flux"] /= np.maximum(g["clump_flux"].sum(1, keepdims=True), 1e-9)
    g["clump_r"] = g["disk_h"][:, None] * rng.gamma(2.0, 0.7, (n, MAX_CLUMPS))
    g["clump_theta"] = rng.uniform(0, 2 * np.pi, (n, MAX_CLUMPS))
    g["clump_sigma"] = rng.uniform(0.006, 0.015, (n, MAX_CLUMPS))

    p_merge = MERGER_P[None, 1:] * (1 + 1.5 * hiz[:, None])
    p = np.concatenate([1 - p_merge.sum(1, keepdims=True), p_merge], axis=1)
    g["merger"] = (u(n)[:, None] > np.cumsum(p, 1)[:, :-1]).sum(1).astype(np.int8)
    g["tail_frac"] = np.choose(g["merger"], [0.0, rng.uniform(0.05, 0.12, n), rng.uniform(0.12, 0.25, n),
                                              rng.uniform(0.15, 0.3, n)])
    g["tail_angle"] = rng.uniform(0, 2 * np.pi, n)
    g["tail_arms"] = np.where(g["merger"] == 1, 1, 2)
    g["companion_flux"] = np.where(g["merger"] == 3, rng.uniform(0.3, 1.0, n), 0.0)
    sep, ang = g["size"] * rng.uniform(1.2, 2.5, n), rng.uniform(0, 2 * np.pi, n)
    g["companion_x"], g["companion_y"] = sep * np.cos(ang), sep * np.sin(ang)
    g["companion_re"] = g["size"] * rng.uniform(0.5, 1.0, n)
    g["companion_n"] = rng.uniform(1, 4, n)
    g["companion_q"] = rng.uniform(0.5, 1.0, n)
    g["companion_pa"] = rng.uniform(0, np.pi, n)

    n_stars = np.minimum(rng.poisson(0.6, n), MAX_STARS)
    g["star_flux"] = np.where(np.arange(MAX_STARS) < n_stars[:, None],
                              10 ** rng.uniform(-2.0, -0.3, (n, MAX_STARS)), 0.0)
    g["star_x"], g["star_y"] = rng.uniform(-0.47, 0.47, (2, n, MAX_STARS))
    g["star_colour"] = rng.uniform(0, 1, (n, MAX_STARS))      # 0 blue .. 1 red
    n_nb = np.minimum(rng.poisson(0.4, n), MAX_NEIGHBOURS)
    g["nb_flux"] = np.where(np.arange(MAX_NEIGHBOURS) < n_nb[:, None],
                            10 ** rng.uniform(-1.5, -0.3, (n, MAX_NEIGHBOURS)), 0.0)
    r, a = rng.uniform(0.2, 0.45, (n, MAX_NEIGHBOURS)), rng.uniform(0, 2 * np.pi, (n, MAX_NEIGHBOURS))
    g["nb_x"], g["nb_y"] = r * np.cos(a), r * np.sin(a)
    g["nb_re"] = rng.uniform(0.008, 0.035, (n, MAX_NEIGHBOURS))
    g["nb_n"] = rng.uniform(1, 4, (n, MAX_NEIGHBOURS))
    g["nb_q"] = rng.uniform(0.3, 1, (n, MAX_NEIGHBOURS))
    g["nb_pa"] = rng.uniform(0, np.pi, (n, MAX_NEIGHBOURS))
    g["nb_red"] = rng.uniform(0, 1, (n, MAX_NEIGHBOURS))

    _sample_artifacts(rng, g, style)
    g["psf_fwhm"] = rng.uniform(*style.psf_fwhm, n)
    observability(g, style)
    ring_visibility(g, style)
    return g


def _sample_artifacts(rng, g, style: SurveyStyle) -> None:
    """A few images are dominated by a star, satellite trail or bad columns; more have a minor one."""
    n = len(g["mag"])
    u = rng.random(n)
    major, minor = u < 0.03, (u >= 0.03) & (u < 0.07)
    kind = np.where(major, rng.integers(1, 4, n), np.where(minor, rng.integers(2, 4, n), ARTIFACT_NONE))
    g["artifact_kind"] = kind
    g["artifact"] = np.where(major, rng.uniform(0.8, 1.0, n), np.where(minor, rng.uniform(0.1, 0.3, n), 0.0))
    star = kind == ARTIFACT_STAR
    g["mag"] = np.where(star, g["mag"] + 3.5, g["mag"])         # the galaxy hides behind a star
    g["artifact_mag"] = style.mag_limit - rng.uniform(3.5, 6.0, n)
    # trails and columns pass near the centre when they ruin the image, anywhere otherwise
    g["artifact_offset"] = np.where(major, rng.uniform(-0.05, 0.05, n), rng.uniform(-0.45, 0.45, n))
    g["artifact_angle"] = rng.uniform(0, np.pi, n)
    g["artifact_level"] = np.where(major, rng.uniform(20, 80, n), rng.uniform(3, 8, n))  # sky sigmas
    g["artifact_width"] = np.where(major, rng.integers(1, 4, n), 1)
    g["artifact_hot"] = rng.random(n) < 0.5


def observability(g, style: SurveyStyle) -> None:
    """Integrated S/N and 'clarity' in [0, 1]: how well features can be seen (S/N and resolution)."""
    flux = 10 ** (-0.4 * (g["mag"] - style.zeropoint))
    area = np.pi * (64 * (2 * g["size"] + g["psf_fwhm"])) ** 2           # pixels of a 64 px image
    noise = np.sqrt(flux + area * (style.sky + style.read_noise ** 2))
    g["snr"] = flux / noise
    resolved = 1 - np.exp(-0.5 * (g["size"] / g["psf_fwhm"]) ** 2)
    g["clarity"] = (1 - np.exp(-g["snr"] / 80)) * resolved


def take(g: dict[str, np.ndarray], index) -> dict[str, np.ndarray]:
    """The galaxies at ``index`` (a slice, mask or integer array)."""
    return {k: v[index] for k, v in g.items()}


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
