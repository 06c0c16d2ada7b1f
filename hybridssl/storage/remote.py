"""Shard sets behind a URL (``s3://``, ``gs://``, ``https://``, ``file://``, ``memory://`` ...),
read through fsspec: never a shell command, unlike webdataset's ``pipe:``/``curl`` URLs.

fsspec is the optional extra ``remote`` (``pip install 'hybridssl[remote]'``); object stores
also need their fsspec driver (``s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``; ``aiohttp`` for
``https://``). A remote shard is copied to a local temp folder (hashed on the way against the
manifest's sha256) and read there by the same indexed reader as a local set.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from hybridssl.shards import MANIFEST, ShardError

_CHUNK = 1 << 22


def join(where: str, name: str) -> str:
    return f"{str(where).rstrip('/')}/{name}"


def _fsspec(url: str):
    try:
        import fsspec
    except ImportError:
        raise ShardError(f"{url}: reading shard URLs needs fsspec: pip install 'hybridssl[remote]'") from None
    return fsspec


def read_text(url: str) -> str:
    """A small remote file's text; a missing file is a ShardError naming the URL."""
    fsspec = _fsspec(url)
    try:
        with fsspec.open(url, "rt") as f:
            return f.read()
    except FileNotFoundError as e:  # fsspec's http reports an unreachable host as a missing file
        raise ShardError(f"{url}: {unreachable(e) or 'no such file'}") from None
    except ImportError as e:  # the protocol's driver (s3fs, gcsfs, aiohttp) is missing
        raise ShardError(f"{url}: {e}") from None
    except (OSError, ValueError) as e:
        raise ShardError(f"{url}: cannot read ({type(e).__name__}: {e})") from None


def unreachable(e: BaseException) -> str | None:
    """'cannot connect (...)' when a connection failure caused ``e`` (DNS, refused, timeout)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        names = {c.__name__ for c in type(e).__mro__}
        if isinstance(e, (ConnectionError, TimeoutError, socket.gaierror)) or names & {
                "ClientConnectionError", "ClientConnectorError", "ConnectTimeout", "ConnectionError"}:
            return f"cannot connect ({type(e).__name__}: {e})"
        e = e.__cause__ or e.__context__
    return None


@contextlib.contextmanager
def fetched_shard(where: str, manifest: dict, name: str) -> Iterator[Path]:
    """A local folder holding ``manifest`` and the shard ``name`` copied from ``where``; its
    sha256 must match the manifest's, so a changed or truncated object is refused, not read."""
    fsspec, url = _fsspec(where), join(where, name)
    entry = next(s for s in manifest["shards"] if s["name"] == name)
    with tempfile.TemporaryDirectory(prefix="hybridssl-shard-") as tmp:
        h = hashlib.sha256()
        try:
            with fsspec.open(url, "rb") as src, open(Path(tmp) / name, "wb") as dst:
                while block := src.read(_CHUNK):
                    h.update(block)
                    dst.write(block)
        except FileNotFoundError as e:
            raise ShardError(f"{url}: {unreachable(e) or f'listed in {join(where, MANIFEST)} but missing'}") from None
        except ImportError as e:
            raise ShardError(f"{url}: {e}") from None
        if entry.get("sha256") and h.hexdigest() != entry["sha256"]:
            raise ShardError(f"{url}: sha256 {h.hexdigest()[:12]}... differs from the manifest's "
                             f"{entry['sha256'][:12]}...; the shard changed since `hybridssl prepare`")
        (Path(tmp) / MANIFEST).write_text(json.dumps(manifest))
        yield Path(tmp)
