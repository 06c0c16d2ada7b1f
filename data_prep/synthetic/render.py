"""Render galaxies to RGB images, vectorised over a chunk of galaxies (float32 numpy).

Light is built in three bands (g, r, z counts): a Sérsic bulge and an exponential disk seen at
an inclination and position angle, with a bar, logarithmic spiral arms, inner/outer rings (each
with a depleted gap inside) and star-forming clumps drawn in the disk plane, a dust lane across
inclined disks, tidal tails and a companion for mergers, neighbouring galaxies and stars, and
artifacts. Each part is computed only for the galaxies that have it. The light is then blurred
by the survey PSF (separable Gaussians, as matrix products), given sky and shot noise (Gaussian
approximation of Poisson: every pixel holds many sky counts), clipped at saturation, and mapped
to RGB with Lupton et al. (2004)'s colour-preserving asinh stretch.
"""
from __future__ import annotations

import numpy as np

from data_prep.synthetic.morphology import ARTIFACT_COLUMNS, ARTIFACT_STAR, ARTIFACT_TRAIL
from data_prep.synthetic.rings import RING_KINDS
from data_prep.synthetic.surveys import SurveyStyle

F32 = np.float32
# Relative counts in g, r, z (mean 1): old bulges are red, young arms and clumps blue.
SED = {name: np.array(v, F32) / np.mean(v) for name, v in {
    "bulge": (0.6, 1.0, 1.3), "bar": (0.65, 1.0, 1.25), "disk": (0.85, 1.0, 1.05),
    "ring": (0.95, 1.0, 0.95), "young": (1.3, 1.0, 0.75), "tail": (0.85, 1.0, 1.0),
    "blue_star": (1.3, 1.0, 0.75), "red_star": (0.45, 1.0, 1.6)}.items()}
DUST_TAU = np.array([1.0, 0.7, 0.45], F32)   # dust dims g most
SATURATION_SKIES = 1000.0                    # saturation level in units of the sky per pixel
GAP_PER_RING_LIGHT = 3.0                     # gap depth per unit fraction of disk light in the ring


def _col(a, extra_dims: int = 0):
    """Per-galaxy values shaped to broadcast against (n, [K,] S, S) images."""
    a = np.asarray(a, F32)
    return a.reshape(a.shape + (1,) * (2 + extra_dims - (a.ndim - 1)))


def _unit(img):
    """Each image (over its last two axes) scaled to unit sum: components then carry their flux."""
    return img / np.maximum(img.sum((-2, -1), keepdims=True), F32(1e-12))


def _gauss_1d(grid, centre, sigma):
    """(n, K, S) unit-sum 1-D Gaussians; an outer product of two gives a separable 2-D blob."""
    g = np.exp(-0.5 * ((grid - centre[..., None]) / sigma[..., None]) ** 2)
    return g / np.maximum(g.sum(-1, keepdims=True), F32(1e-12))


def _blobs(grid, x, y, sigma, flux):
    """Sum over K of point-like Gaussians: (n, K) positions, widths and fluxes -> (n, S, S)."""
    return np.einsum("nk,nky,nkx->nyx", flux.astype(F32), _gauss_1d(grid, y, sigma), _gauss_1d(grid, x, sigma))


def _mix(a, b, w):
    w = np.asarray(w, F32)[..., None]
    return (1 - w) * SED[a] + w * SED[b]


def _add(light, idx, img, flux, sed):
    """light[idx] += img (k, S, S) x flux (k,) x SED (3,) or (k, 3)."""
    sed = np.broadcast_to(np.asarray(sed, F32), (len(idx), 3))
    light[idx] += img[:, None] * (np.asarray(flux, F32)[:, None] * sed)[..., None, None]


def _sersic_r(r, re, n, floor):
    return np.exp(-(2 * n - F32(1 / 3)) * (np.maximum(r, floor) / re) ** (1 / n))


def _ring_gaps(g, rd, floor):
    """(n, S, S) factor on the smooth disk: a ring gathers its light from the disk just inside it,
    leaving a gap three ring widths in, as deep as the ring is bright (at most 80%)."""
    gaps = np.ones_like(rd)
    for kind in RING_KINDS:
        i = np.flatnonzero(g[kind] > 0)
        if i.size:
            r0, w = _col(g[kind + "_r"][i]), _col(g["ring_width"][i])
            depth = _col(np.minimum(GAP_PER_RING_LIGHT * g[kind][i], 0.8))
            gaps[i] *= 1 - depth * np.exp(-0.5 * ((rd[i] - r0 * (1 - 3 * w)) / (1.5 * w * r0 + floor)) ** 2)
    return gaps


def _main_galaxy(g, X, Y, floor, flux, light):
    """Bulge, disk, bar, arms, rings and clumps behind a dust lane; each part only where present."""
    col = lambda k, idx=slice(None): _col(g[k][idx])  # noqa: E731
    pa, h = col("pa"), col("disk_h")
    c, s = np.cos(pa), np.sin(pa)
    u, v = X * c + Y * s, Y * c - X * s
    yd = v / col("disk_q")                              # disk plane, deprojected
    rd = np.maximum(np.hypot(u, yd), floor)
    bt, fd, bar = g["bulge_frac"], 1 - g["bulge_frac"], g["bar"]
    edge = np.clip((g["inclination"] - 60) / 25, 0, 1) ** 2
    main = np.zeros_like(light)
    everyone = np.arange(len(flux))

    vb = v / col("bulge_q")
    rb = np.hypot(u, vb)
    boxy = np.flatnonzero((bar > 0) & (edge > 0.1))     # bars seen edge-on make boxy bulges
    if boxy.size:
        p = _col(2 + 1.5 * edge[boxy])
        rb[boxy] = (np.abs(u[boxy]) ** p + np.abs(vb[boxy]) ** p) ** (1 / p)
    _add(main, everyone, _unit(_sersic_r(rb, col("bulge_re"), col("sersic_n"), floor)), flux * bt, SED["bulge"])

    parts = {"arms": fd * 0.45 * g["arm_strength"], "bar": fd * 0.3 * bar,
             "ring_inner": fd * g["ring_inner"], "ring_outer": fd * g["ring_outer"], "clumps": g["clump_frac"]}
    smooth = np.maximum(fd - sum(parts.values()), 0.1 * fd)
    i = np.flatnonzero(fd > 0)
    _add(main, i, _unit(np.exp(-rd[i] / h[i]) * _ring_gaps(g, rd, floor)[i]), (flux * smooth)[i], SED["disk"])

    i = np.flatnonzero(bar > 0)
    if i.size:
        ca, sa, bl = np.cos(col("bar_angle", i)), np.sin(col("bar_angle", i)), col("bar_len", i)
        bx, by = (u[i] * ca + yd[i] * sa) / bl, (yd[i] * ca - u[i] * sa) / (bl * col("bar_width", i))
        bar_img = np.clip(1 - (np.abs(bx) ** 2.5 + np.abs(by) ** 2.5), 0, None) ** 2
        _add(main, i, _unit(bar_img), (flux * parts["bar"])[i], SED["bar"])

    i = np.flatnonzero(g["arms"] > 0)
    if i.size:
        tan_pitch = np.tan(np.radians(col("pitch", i)))
        theta = col("arms", i) * (np.arctan2(yd[i], u[i]) - np.log(rd[i] / h[i]) / tan_pitch) + col("arm_phase", i)
        r_in = _col(np.maximum(1.5 * g["bulge_re"][i], np.where(bar[i] > 0, g["bar_len"][i], 0)))
        envelope = (1 - np.exp(-(rd[i] / r_in) ** 2)) ** 2 * np.exp(-rd[i] / (1.2 * h[i]))
        _add(main, i, _unit(envelope * (0.5 + 0.5 * np.cos(theta)) ** 3), (flux * parts["arms"])[i], SED["young"])

    for kind, sed in zip(RING_KINDS, ("ring", "young")):
        i = np.flatnonzero(g[kind] > 0)
        if i.size:
            r0 = col(kind + "_r", i)
            ring = np.exp(-0.5 * ((rd[i] - r0) / (col("ring_width", i) * r0 + floor)) ** 2)
            _add(main, i, _unit(ring), (flux * parts[kind])[i], SED[sed])

    i = np.flatnonzero(g["clumps"] > 0)
    if i.size:
        cr, ct = g["clump_r"][i], g["clump_theta"][i]
        xd, ydc = cr * np.cos(ct), cr * np.sin(ct) * g["disk_q"][i, None]
        cp, sp = np.cos(g["pa"][i])[:, None], np.sin(g["pa"][i])[:, None]
        blobs = _blobs(X[0, 0], xd * cp - ydc * sp, xd * sp + ydc * cp, np.maximum(g["clump_sigma"][i], floor),
                       g["clump_flux"][i])
        _add(main, i, blobs, (flux * parts["clumps"])[i], SED["young"])

    # dust lane: a mid-plane screen, offset from the centre when not exactly edge-on
    i = np.flatnonzero(g["dust"] * edge > 0.01)
    if i.size:
        tau = _col(2.5 * g["dust"][i] * edge[i])
        offset = _col(0.3 * g["disk_h"][i] * np.cos(np.radians(g["inclination"][i])))
        width = _col(np.maximum(0.15 * g["disk_h"][i], 0.6 * floor))
        lane = tau * np.exp(-0.5 * ((v[i] - offset) / width) ** 2) * np.exp(-np.abs(u[i]) / (3 * h[i]))
        main[i] *= np.exp(-DUST_TAU[:, None, None] * lane[:, None])
    light += main


def _interactions(g, X, Y, floor, flux, light):
    """Tidal tails (a one-armed plume for a minor disturbance) and a merging companion."""
    i = np.flatnonzero(g["tail_frac"] > 0)
    if i.size:
        r = np.maximum(np.hypot(X, Y), floor)
        size = _col(g["size"][i])
        phi = np.arctan2(Y, X) - _col(g["tail_angle"][i])
        theta = _col(g["tail_arms"][i]) * (phi - np.log(r / size) / np.tan(np.radians(65)))
        env = (1 - np.exp(-(r / (1.5 * size)) ** 2)) ** 2 * np.exp(-r / (2.5 * size))
        _add(light, i, _unit(env * (0.5 + 0.5 * np.cos(theta)) ** 6), (flux * g["tail_frac"])[i], SED["tail"])
    i = np.flatnonzero(g["companion_flux"] > 0)
    if i.size:
        col = lambda k: _col(g["companion_" + k][i])  # noqa: E731
        c, s = np.cos(col("pa")), np.sin(col("pa"))
        dx, dy = X - col("x"), Y - col("y")
        r = np.hypot(dx * c + dy * s, (dy * c - dx * s) / col("q"))
        _add(light, i, _unit(_sersic_r(r, col("re"), col("n"), floor)), (flux * g["companion_flux"])[i],
             _mix("disk", "bulge", g["companion_n"][i] / 4))


def _field(g, X, Y, floor, flux, light):
    """Neighbouring galaxies and foreground stars."""
    i = np.flatnonzero(g["nb_flux"].sum(1) > 0)
    if i.size:
        col = lambda k: _col(g["nb_" + k][i], 1)  # noqa: E731
        c, s = np.cos(col("pa")), np.sin(col("pa"))
        dx, dy = X[:, None] - col("x"), Y[:, None] - col("y")
        r = np.hypot(dx * c + dy * s, (dy * c - dx * s) / col("q"))
        nb = _unit(_sersic_r(r, col("re"), col("n"), floor))
        counts = (g["nb_flux"][i] * flux[i, None])[..., None] * _mix("young", "bulge", g["nb_red"][i])
        light[i] += np.einsum("nkyx,nkc->ncyx", nb, counts.astype(F32))
    i = np.flatnonzero(g["star_flux"].sum(1) > 0)
    if i.size:
        grid = X[0, 0]
        counts = (g["star_flux"][i] * flux[i, None])[..., None] * _mix("blue_star", "red_star", g["star_colour"][i])
        gy = _gauss_1d(grid, g["star_y"][i], np.full(g["star_y"][i].shape, floor, F32))
        gx = _gauss_1d(grid, g["star_x"][i], np.full(g["star_x"][i].shape, floor, F32))
        light[i] += np.einsum("nkc,nky,nkx->ncyx", counts.astype(F32), gy, gx)


def _artifacts(g, X, Y, floor, style, sky_sigma, light):
    """A bright star with diffraction spikes over the galaxy, or a satellite trail."""
    i = np.flatnonzero(g["artifact_kind"] == ARTIFACT_STAR)
    if i.size:
        star_flux = 10 ** (-0.4 * (g["artifact_mag"][i] - style.zeropoint))
        xs = _col(g["artifact_offset"][i])
        core = _unit(np.exp(-0.5 * ((X - xs) ** 2 + Y ** 2) / floor ** 2))
        spikes = _unit(np.exp(-0.5 * ((X - xs) / floor) ** 2 - np.abs(Y) / 0.15)
                       + np.exp(-0.5 * (Y / floor) ** 2 - np.abs(X - xs) / 0.15))
        _add(light, i, core + 0.05 * spikes, star_flux, SED["blue_star"])
    i = np.flatnonzero(g["artifact_kind"] == ARTIFACT_TRAIL)
    if i.size:
        a = _col(g["artifact_angle"][i])
        d = X * np.sin(a) - Y * np.cos(a) - _col(g["artifact_offset"][i])
        _add(light, i, np.exp(-0.5 * (d / floor) ** 2), g["artifact_level"][i] * sky_sigma, np.ones(3))


def _blur(light, g, style: SurveyStyle, size: int):
    """Separable PSF: one Gaussian from space, core + wings (double Gaussian) from the ground."""
    pix = np.arange(size, dtype=F32)
    sigma = g["psf_fwhm"] * size / 2.355
    terms = [(1.0, sigma)] if style.psf == "gaussian" else [(0.85, 0.9 * sigma), (0.15, 2.2 * sigma)]
    out = np.zeros_like(light)
    for weight, s in terms:
        s = _col(np.maximum(s, 0.3))
        k = np.exp(-0.5 * ((pix[:, None] - pix[None, :]) / s) ** 2)      # (n, S, S), symmetric
        k /= np.exp(-0.5 * (np.arange(-size, size + 1, dtype=F32) / s) ** 2).sum(-1, keepdims=True)
        k = k[:, None]
        out += F32(weight) * (k @ light @ k)
    return out


def render(g: dict, style: SurveyStyle, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, size, size, 3) uint8 and each galaxy's noise-free rotational asymmetry (n,)."""
    n = len(g["mag"])
    grid = ((np.arange(size) + 0.5) / size - 0.5).astype(F32)
    X, Y = grid[None, None, :], grid[None, :, None]
    floor = F32(0.4 / size)                             # sub-pixel scale: point sources, cores
    sky = style.sky * (64 / size) ** 2                  # same S/N per unit area at any size
    read = style.read_noise * 64 / size
    sky_sigma = float(np.sqrt(sky + read ** 2))
    flux = (10 ** (-0.4 * (g["mag"] - style.zeropoint))).astype(F32)

    light = np.zeros((n, 3, size, size), F32)
    _main_galaxy(g, X, Y, floor, flux, light)
    _interactions(g, X, Y, floor, flux, light)
    total = light.sum(1)
    asym = np.abs(total - total[:, ::-1, ::-1]).sum((1, 2)) / (2 * total.sum((1, 2)))
    _field(g, X, Y, floor, flux, light)
    _artifacts(g, X, Y, floor, style, sky_sigma, light)
    light = _blur(light, g, style, size)

    noisy = light + np.sqrt(sky + read ** 2 + np.maximum(light, 0)) * rng.standard_normal(light.shape, dtype=F32)
    saturation = F32(SATURATION_SKIES * sky)
    _detector_defects(g, noisy, saturation, sky_sigma, size)
    np.minimum(noisy, saturation, out=noisy)
    return _to_rgb(noisy, style, sky_sigma), asym.astype(F32)


def _detector_defects(g, img, saturation, sky_sigma, size):
    """Bad columns (hot or dead) and the bleed trail of a saturated artifact star, in place."""
    for i in np.flatnonzero(g["artifact_kind"] == ARTIFACT_COLUMNS):
        c0 = int(np.clip((g["artifact_offset"][i] + 0.5) * size, 0, size - 1))
        img[i, :, :, c0:c0 + int(g["artifact_width"][i])] = saturation if g["artifact_hot"][i] else -5 * sky_sigma
    for i in np.flatnonzero(g["artifact_kind"] == ARTIFACT_STAR):
        c0 = int(np.clip((g["artifact_offset"][i] + 0.5) * size, 0, size - 1))
        half = int(size * min(0.45, 0.04 * (g["mag"][i] - g["artifact_mag"][i])))
        img[i, :, size // 2 - half:size // 2 + half, c0] = saturation


def _to_rgb(img, style: SurveyStyle, sky_sigma) -> np.ndarray:
    """Lupton asinh stretch on the summed intensity (keeps colours), bands g,r,z -> B,G,R."""
    x = img * (np.array(style.band_gain, F32)[None, :, None, None] / F32(sky_sigma * style.stretch))
    intensity = x.mean(1, keepdims=True)
    safe = np.where(np.abs(intensity) < 1e-6, F32(1e-6), intensity)
    scaled = x * (np.arcsinh(safe) / safe) / F32(style.white)
    rgb = np.clip(scaled[:, ::-1], 0, 1)              # z, r, g -> R, G, B
    return (rgb.transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)
