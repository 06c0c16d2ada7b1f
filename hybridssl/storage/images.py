"""Load a galaxy image (JPEG, PNG or FITS) as uint8 RGB, resize it once, encode it for a shard;
``load_bands`` reads the same files as unscaled float bands (``prepare --image-format npy``,
normalised in ``data_prep/bands.py``).

The format is read from the file's content, never its extension, so a PNG named ``.jpg``
loads. Every failure (missing, empty, truncated, undecodable file) raises :class:`ImageError`
with a one-line reason for ``rejected.csv``.

FITS cutouts (multi-band float, e.g. DECaLS g,r,z as (3, H, W) or (H, W, 3)) become RGB by
this stretch:

1. bad pixels (NaN, inf, and exact zeros, which DECaLS writes where a band has no coverage)
   are set to that band's median sky over its good pixels;
2. each band has its median sky subtracted;
3. all bands are divided by one common scale, the 99.5th percentile of the sky-subtracted
   good pixels, so the colour balance between bands survives;
4. ``asinh``: ``asinh(Q x) / asinh(Q)`` with Q = 10, which keeps faint outskirts visible
   without saturating the core; ``linear``: ``x`` unchanged;
5. clipped to [0, 1] and scaled to 0..255. Bands map reddest to red: with three bands in
   g,r,z order, R = z, G = r, B = g. Rows are flipped so north is up, as in survey JPEGs.

Images of more than 8 bits a channel (16-bit PNG or TIFF, RGB or grey; 32-bit or float TIFF)
are read at full depth (OpenCV: Pillow keeps only the high byte of 16-bit RGB) and scaled
linearly by the image's own maximum over all channels: ``round(255 * x / max)``. Dividing by
257 (the full 16-bit range) would leave a 12- or 14-bit camera's image at 1/16 or 1/4 of the
8-bit range, a few dozen grey levels; the per-image maximum keeps every 8-bit level, clips
nothing, keeps zero at zero and the colour balance between channels, and matches the FITS
path, which also scales each image by its own statistics.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FITS_STRETCHES = ("asinh", "linear")
MAX_IMAGE_SIZE = 4096  # pixels a side: 16x GZ's 424 px cut-outs; far larger sizes only exhaust memory
IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG"}
ASINH_Q = 10.0
SCALE_PERCENTILE = 99.5
_FITS_MAGIC = b"SIMPLE  ="
_GZIP_MAGIC = b"\x1f\x8b"


class ImageError(ValueError):
    """An image cannot be used; the message is the reason, naming the file."""


def fits_to_rgb(data: np.ndarray, stretch: str = "asinh") -> np.ndarray:
    """(bands, H, W) or (H, W, bands) float -> (H, W, 3) uint8 by the stretch documented above."""
    if stretch not in FITS_STRETCHES:
        raise ValueError(f"fits stretch {stretch!r}: choose one of {FITS_STRETCHES}")
    a = np.asarray(data, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3 and a.shape[-1] <= 5 < a.shape[0]:
        a = np.moveaxis(a, -1, 0)
    if a.ndim != 3 or a.shape[0] > 5:
        raise ImageError(f"FITS data of shape {np.shape(data)} is not a (bands, H, W) cutout")
    good = np.isfinite(a) & (a != 0)
    if not good.any():
        raise ImageError("FITS cutout has no valid pixels (all NaN, inf or zero)")
    sky = np.array([np.median(b[g]) if g.any() else 0.0 for b, g in zip(a, good)])
    x = np.where(good, a, sky[:, None, None]) - sky[:, None, None]
    scale = np.percentile(x[good], SCALE_PERCENTILE)
    x = x / scale if scale > 0 else np.zeros_like(x)
    if stretch == "asinh":
        x = np.arcsinh(ASINH_Q * x) / np.arcsinh(ASINH_Q)
    x = np.clip(x, 0.0, 1.0)
    bands = x[::-1]  # reddest first -> R
    rgb = np.stack([bands[min(i, len(bands) - 1)] for i in range(3)], -1)
    return np.flipud((rgb * 255 + 0.5).astype(np.uint8))


def _is_fits(head: bytes, path: Path) -> bool:
    return head.startswith(_FITS_MAGIC) or (head.startswith(_GZIP_MAGIC) and ".fit" in path.name.lower())


def load_image(path: str | Path, fits_stretch: str = "asinh") -> np.ndarray:
    """(H, W, 3) uint8 RGB from a JPEG, PNG (any PIL format) or FITS file."""
    path = Path(path)
    if _is_fits(_read_head(path), path):
        return _load_fits(path, fits_stretch)
    with _pil_errors(path), Image.open(path) as im:
        if _is_high_depth(im):
            return _high_depth_rgb(path)
        im.load()  # decode now: truncated files fail here, not later
        return np.asarray(im.convert("RGB"))


def load_bands(path: str | Path) -> tuple[np.ndarray, bool]:
    """(bands, H, W) float64 at the file's full depth, nothing stretched (PNG/TIFF integers as
    fractions of their type's full scale), and whether it is FITS (rows south-up, exact zeros mean "no data"). FITS: the planes of the first image
    HDU, or every 2-D image HDU of one shape stacked; other formats: their channels (grey = 1
    band, RGB = 3, alpha dropped)."""
    path = Path(path)
    if _is_fits(_read_head(path), path):
        return _bands_first(_read_fits(path).astype(np.float64), path), True
    with _pil_errors(path), Image.open(path) as im:
        if _is_high_depth(im):
            a = _read_high_depth(path)
        else:
            im.load()
            a = np.asarray(im if im.mode in ("L", "RGB") else im.convert("RGB"))
    # integers by their type's full scale, so 8- and 16-bit files of one set share one brightness scale
    full = float(np.iinfo(a.dtype).max) if np.issubdtype(a.dtype, np.integer) else 1.0
    return _bands_first(a.astype(np.float64) / full, path, channels_last=True), False


def _bands_first(a: np.ndarray, path: Path, channels_last: bool = False) -> np.ndarray:
    """2-D -> (1, H, W); 3-D -> bands first (FITS cubes come either way: the short axis is the bands)."""
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3 and (channels_last or a.shape[-1] < a.shape[0]):
        return np.moveaxis(a, -1, 0)
    if a.ndim == 3:
        return a
    raise ImageError(f"image data of shape {a.shape} is not (bands, H, W): {path}")


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(len(_FITS_MAGIC))
    except FileNotFoundError:
        raise ImageError(f"image file not found: {path}") from None
    except OSError as e:
        raise ImageError(f"image file unreadable: {path} ({e.strerror or e})") from None
    if not head:
        raise ImageError(f"image file is empty (0 bytes): {path}")
    return head


@contextlib.contextmanager
def _pil_errors(path: Path):
    """PIL's errors for undecodable, corrupt and truncated data as one-line ImageErrors."""
    try:
        yield
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ImageError(f"not a decodable image: {path} ({type(e).__name__})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"corrupt or truncated image: {path} ({e})") from None


def _is_high_depth(im: Image.Image) -> bool:
    """More than 8 bits a channel (read from the undecoded tile: 16-bit RGB opens as "RGB")."""
    return im.mode in ("I", "F") or any(";16" in str(t.args) for t in im.tile)


def _read_high_depth(path: Path) -> np.ndarray:
    """(H, W) grey or (H, W, 3) RGB (OpenCV's BGR reversed, alpha dropped), at full depth."""
    import cv2  # only high-depth images pay for OpenCV
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise ImageError(f"corrupt or truncated image: {path} (high-depth image does not decode)")
    return a[..., 2::-1] if a.ndim == 3 and a.shape[-1] >= 3 else a.reshape(*a.shape[:2], -1)[..., 0]


def _high_depth_rgb(path: Path) -> np.ndarray:
    """A 16-bit (or wider) image as uint8 RGB, scaled by its own maximum (see the module doc)."""
    a = _read_high_depth(path)
    a = a if a.ndim == 3 else np.repeat(a[..., None], 3, -1)
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(0, None)
    top = a.max()
    return (a * (255.0 / top) + 0.5).astype(np.uint8) if top > 0 else np.zeros(a.shape, np.uint8)


def _read_fits(path: Path) -> np.ndarray:
    """The first image HDU's data, or every 2-D image HDU of its shape stacked as bands."""
    from astropy.io import fits  # only FITS catalogs pay for astropy
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*truncated")  # reject a cut file, never pad it
            with fits.open(path, memmap=False) as hdus:
                images = [np.array(h.data) for h in hdus if h.data is not None and np.ndim(h.data) >= 2]
    except (OSError, ValueError, TypeError, IndexError, Warning) as e:  # astropy's errors for broken files
        raise ImageError(f"FITS file cannot be decoded: {path} ({e})") from None
    if not images:
        raise ImageError(f"FITS file has no image data: {path}")
    planes = [a for a in images if a.ndim == 2 and a.shape == images[0].shape]
    return np.stack(planes) if images[0].ndim == 2 and len(planes) > 1 else images[0]


def _load_fits(path: Path, stretch: str) -> np.ndarray:
    try:
        return fits_to_rgb(_read_fits(path), stretch)
    except ImageError as e:
        raise ImageError(f"{e}: {path}") from None


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to square (if needed) and resize to ``size`` x ``size`` with Lanczos."""
    pil = Image.fromarray(img)
    if pil.size != (size, size):
        pil = ImageOps.fit(pil, (size, size), method=Image.Resampling.LANCZOS)
    return np.asarray(pil)


def encode_image(img: np.ndarray, image_format: str = "jpg", jpeg_quality: int = 95) -> bytes:
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format {image_format!r}: choose one of {sorted(IMAGE_FORMATS)}")
    buf = io.BytesIO()
    options = {"quality": jpeg_quality} if image_format == "jpg" else {"optimize": False}
    Image.fromarray(img).save(buf, format=IMAGE_FORMATS[image_format], **options)
    return buf.getvalue()


def prepare_image(path, size: int, image_format: str = "jpg", jpeg_quality: int = 95,
                  fits_stretch: str = "asinh") -> bytes:
    """The one call per sample: load, resize once, encode."""
    return encode_image(resize_square(load_image(path, fits_stretch), size), image_format, jpeg_quality)


def decode_image(data: bytes) -> np.ndarray:
    """Encoded shard image bytes -> (H, W, 3) uint8 (for checks; readers decode their own way)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im.convert("RGB"))
