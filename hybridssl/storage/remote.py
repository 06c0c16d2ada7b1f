"""Files behind a URL (``s3://``, ``gs://``, ``https://``, ``file://``, ``memory://`` ...), read
through fsspec: never a shell command, unlike webdataset's ``pipe:``/``curl`` URLs.

fsspec is the optional extra ``remote`` (``pip install 'hybridssl[remote]'``); object stores
also need their fsspec driver (``s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``; ``aiohttp`` for
``https://``). ``hybridssl.storage.shards`` reads remote shard sets with these: a manifest's text,
and each shard copied to a local temp folder, hashed on the way.
"""
from __future__ import annotations

import hashlib
import socket
from pathlib import Path

_CHUNK = 1 << 22


class RemoteError(OSError):
    """A URL that cannot be read; the message names it and says why (fsspec or its driver missing,
    host unreachable, no such file)."""


def join(where: str, name: str) -> str:
    return f"{str(where).rstrip('/')}/{name}"


def _fsspec(url: str):
    try:
        import fsspec
    except ImportError:
        raise RemoteError(f"{url}: reading shard URLs needs fsspec: pip install 'hybridssl[remote]'") from None
    return fsspec


def read_text(url: str) -> str:
    """A small remote file's text; a missing file is a RemoteError naming the URL."""
    fsspec = _fsspec(url)
    try:
        with fsspec.open(url, "rt") as f:
            return f.read()
    except FileNotFoundError as e:  # fsspec's http reports an unreachable host as a missing file
        raise RemoteError(f"{url}: {unreachable(e) or 'no such file'}") from None
    except ImportError as e:  # the protocol's driver (s3fs, gcsfs, aiohttp) is missing
        raise RemoteError(f"{url}: {e}") from None
    except (OSError, ValueError) as e:
        raise RemoteError(f"{url}: cannot read ({type(e).__name__}: {e})") from None


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


def copy_hashed(url: str, dst: Path) -> str:
    """Copy ``url`` to the local file ``dst``; returns the sha256 of what was read. A missing object
    raises FileNotFoundError (the caller knows what it expected there); an unreachable host or a
    missing driver is a RemoteError."""
    fsspec, h = _fsspec(url), hashlib.sha256()
    try:
        with fsspec.open(url, "rb") as src, open(dst, "wb") as out:
            while block := src.read(_CHUNK):
                h.update(block)
                out.write(block)
    except FileNotFoundError as e:
        if unreachable(e):
            raise RemoteError(f"{url}: {unreachable(e)}") from None
        raise
    except ImportError as e:
        raise RemoteError(f"{url}: {e}") from None
    return h.hexdigest()
