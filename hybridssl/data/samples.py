"""Decoding one raw shard sample (member bytes) into tensors; shared by the stream and the indexed reader."""
from __future__ import annotations

import functools
import io
import json

import numpy as np
import torch

from hybridssl.storage.shards import decode_array, decode_key, decode_votes, encode_votes

DECODERS = ("torchvision", "pil")
_IMAGE_MEMBERS = ("image.jpg", "image.png", "image.jpeg", "image.npy")


def decode_image(data: bytes, backend: str = "torchvision") -> torch.Tensor:
    """JPEG/PNG bytes -> uint8 (3, H, W), RGB, without any float conversion."""
    if backend == "torchvision":
        from torchvision.io import ImageReadMode, decode_image as tv_decode
        return tv_decode(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)


def decode_bands(data: bytes) -> torch.Tensor:
    """``image.npy`` bytes (float16 (bands, H, W), ``prepare --image-format npy``) -> float32 tensor."""
    a = decode_array(data)
    if a.dtype != np.float16 or a.ndim != 3:
        raise ValueError(f"image.npy is {a.dtype} {a.shape}, not float16 (bands, H, W)")
    return torch.from_numpy(a.astype(np.float32))


def warm_decoder(backend: str) -> None:
    """torchvision's first decode loads its image library (seconds); do it once here so that
    forked DataLoader workers inherit it instead of each paying it at every start."""
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    decode_image(buf.getvalue(), backend)


@functools.lru_cache(maxsize=8)
def _npy_header(n_answers: int) -> bytes:
    """The exact .npy header ``encode_votes`` writes for ``n_answers`` float32 values."""
    return encode_votes(np.zeros(n_answers, dtype=np.float32))[:-4 * n_answers]


def decode_votes_fast(data: bytes, n_answers: int) -> np.ndarray:
    """``decode_votes`` without ``np.load``'s header parsing when the header is the one we write
    (any other header, e.g. from another numpy version, goes through ``np.load``)."""
    header = _npy_header(n_answers)
    if len(data) == len(header) + 4 * n_answers and data.startswith(header):
        return np.frombuffer(data, dtype=np.float32, offset=len(header)).copy()
    return decode_votes(data).astype(np.float32, copy=False)


def parse_sample(raw: dict, image_size: int, n_answers: int, with_votes: bool, backend: str, in_chans: int) -> dict:
    """A raw webdataset sample -> decoded dict; raises on anything corrupt (the caller skips it).
    ``image``: uint8 (3, H, W) from JPEG/PNG, float32 (in_chans, H, W) from ``image.npy``."""
    key = raw.get("__key__", "?")
    name = next((k for k in _IMAGE_MEMBERS if k in raw), None)
    if name is None:
        raise ValueError(f"sample {key}: no image")
    image = decode_bands(raw[name]) if name == "image.npy" else decode_image(raw[name], backend)
    if image.shape != (in_chans, image_size, image_size):
        raise ValueError(f"sample {key}: image {tuple(image.shape)}, manifest says {in_chans} bands, "
                         f"{image_size} square")
    meta = json.loads(raw["meta.json"]) if "meta.json" in raw else {}
    votes = None
    if with_votes:
        if "votes.npy" not in raw:
            raise ValueError(f"sample {key}: labelled set but no votes.npy")
        votes = decode_votes_fast(raw["votes.npy"], n_answers)
        if votes.shape != (n_answers,) or not np.isfinite(votes).all() or (votes < 0).any():
            raise ValueError(f"sample {key}: votes shape {votes.shape} (want ({n_answers},)), "
                             f"or non-finite/negative counts")
        votes = torch.from_numpy(votes)
    id_str = meta["id_str"] if "id_str" in meta else decode_key(key)
    return {"image": image, "votes": votes, "id_str": str(id_str), "campaign": meta.get("campaign"),
            "meta": meta}
