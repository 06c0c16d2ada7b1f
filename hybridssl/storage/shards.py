"""The shard format: the contract between ``data_prep`` (writer) and ``hybridssl.data`` (reader).

A shard set is a directory with ``shard-000000.tar`` ... and ``manifest.json``. Each sample:

- ``__key__``: the catalog's ``id_str``, escaped by :func:`encode_key` (webdataset splits keys
  at the first dot and at slashes, and real ids such as ``J004544.11-005037.5`` have dots);
- ``image.jpg`` or ``image.png``: RGB, ``image_size`` square, uint8; or ``image.npy``: float16
  ``(in_chans, image_size, image_size)``, normalised per band as the manifest's ``bands`` says
  (``data_prep/bands.py``);
- ``votes.npy``: float32 (n_answers,) over the manifest's schema, zeros where not asked
  (absent for unlabelled samples);
- ``meta.json``: ``{"id_str", "campaign", "source", ...extra catalog columns}``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from hybridssl.storage import remote

MANIFEST = "manifest.json"
SHARD_PATTERN = "shard-{:06d}.tar"
SHARD_NAME = re.compile(r"^shard-\d{6}\.tar$")  # what SHARD_PATTERN writes: never a path elsewhere
FORMAT_VERSION = 1
META_FIELDS = ("id_str", "campaign", "source")  # in every meta.json; --keep-columns may not name them
_SAFE = re.compile(r"[A-Za-z0-9_\-]")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


class ShardError(ValueError):
    """A shard set is missing, inconsistent or corrupt; the message names the file."""


def is_local(where: str | os.PathLike) -> bool:
    """A path, not a URL (``s3://``, ``file://``, ``pipe:`` ...); an existing local path wins,
    so a folder named ``dr8:v2`` is read as the folder it is."""
    return not _URL_SCHEME.match(str(where)) or os.path.exists(where)


def encode_key(id_str: str) -> str:
    """Reversible, dot- and slash-free key: unsafe characters become ``~xx`` hex escapes."""
    return "".join(c if _SAFE.match(c) else "".join(f"~{b:02x}" for b in c.encode()) for c in str(id_str))


def decode_key(key: str) -> str:
    raw, i = bytearray(), 0
    while i < len(key):
        if key[i] == "~":
            raw.append(int(key[i + 1:i + 3], 16))
            i += 3
        else:
            raw += key[i].encode()
            i += 1
    return raw.decode()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def encode_array(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def encode_votes(votes: np.ndarray) -> bytes:
    return encode_array(np.asarray(votes, dtype=np.float32))


def decode_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def decode_votes(data: bytes) -> np.ndarray:
    return decode_array(data)


def read_manifest(shard_dir: str | os.PathLike) -> dict:
    """The manifest of a shard set (a folder or a URL), checked for the fields readers rely on.

    Fields: format_version, schema, schema_hash, n_answers, labelled (bool), image_size,
    image_format, n_samples, shards: [{name, n_samples, sha256, bytes}], command, created; with
    ``image_format: npy`` also in_chans and bands (the per-band normalisation).
    """
    if not is_local(str(shard_dir)):  # a URL: read through fsspec
        path = remote.join(shard_dir, MANIFEST)
        try:
            text = remote.read_text(path)
        except remote.RemoteError as e:
            raise ShardError(str(e)) from None
    else:
        path = Path(shard_dir) / MANIFEST
        if not path.exists():
            raise ShardError(f"{shard_dir}: no {MANIFEST}; is this a directory written by `hybridssl prepare`?")
        if not path.is_file():
            raise ShardError(f"{path}: is a folder (or not a regular file), not a shard-set manifest")
        text = path.read_text()
    try:
        m = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardError(f"{path}: not valid JSON ({e})") from e
    for k in ("schema", "schema_hash", "labelled", "image_size", "shards", "n_samples"):
        if k not in m:
            raise ShardError(f"{path}: missing field {k!r}")
    return m


def manifest_in_chans(m: dict) -> int:
    """Bands per image: the manifest's ``in_chans`` (npy sets), 3 for JPEG/PNG sets."""
    return int(m.get("in_chans", 3))


def shard_entry_problem(name, seen: set) -> str | None:
    """Why a manifest may not list ``name`` (None if it may); adds it to ``seen``. A name outside
    ``shard-NNNNNN.tar`` could point anywhere, and a shard listed twice is read twice."""
    if not SHARD_NAME.match(str(name)):
        return "not a shard file name (expected shard-NNNNNN.tar)"
    if name in seen:
        return "listed twice in the manifest"
    seen.add(name)
    return None


def shard_names(m: dict, where) -> list[str]:
    """The manifest's shard names, refused (ShardError) when one is unsafe or repeated."""
    seen: set = set()
    for s in m["shards"]:
        problem = shard_entry_problem(s.get("name"), seen)
        if problem:
            raise ShardError(f"{where}/{MANIFEST}: shard {s.get('name')!r}: {problem}; "
                             f"run `hybridssl verify {where}`")
    return [s["name"] for s in m["shards"]]


def shard_paths(shard_dir: str | os.PathLike) -> list[Path]:
    """Shard files listed in the manifest (only complete shards are ever listed)."""
    return [Path(shard_dir) / name for name in shard_names(read_manifest(shard_dir), shard_dir)]


@contextlib.contextmanager
def fetched_shard(where: str, manifest: dict, name: str) -> Iterator[Path]:
    """A local folder holding ``manifest`` and the shard ``name`` copied from the URL ``where``; its
    sha256 must match the manifest's, so a changed or truncated object is refused, not read."""
    url = remote.join(where, name)
    entry = next(s for s in manifest["shards"] if s["name"] == name)
    with tempfile.TemporaryDirectory(prefix="hybridssl-shard-") as tmp:
        try:
            digest = remote.copy_hashed(url, Path(tmp) / name)
        except remote.RemoteError as e:
            raise ShardError(str(e)) from None
        except FileNotFoundError:
            raise ShardError(f"{url}: listed in {remote.join(where, MANIFEST)} but missing") from None
        if entry.get("sha256") and digest != entry["sha256"]:
            raise ShardError(f"{url}: sha256 {digest[:12]}... differs from the manifest's "
                             f"{entry['sha256'][:12]}...; the shard changed since `hybridssl prepare`")
        (Path(tmp) / MANIFEST).write_text(json.dumps(manifest))
        yield Path(tmp)
