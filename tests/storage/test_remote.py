"""Remote shard sets (issue 24): an unreachable host is a connection error, not a missing file."""
import socket

import pytest

from hybridssl.storage.remote import unreachable
from hybridssl.storage.shards import ShardError, read_manifest


def _closed_port() -> int:
    with socket.socket() as s:  # bound then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host_is_named_a_connection_error():
    pytest.importorskip("aiohttp")
    with pytest.raises(ShardError, match="cannot connect") as e:
        read_manifest(f"http://127.0.0.1:{_closed_port()}/set")
    assert "no such file" not in str(e.value)


def test_a_plain_missing_file_is_not_a_connection_error():
    assert unreachable(FileNotFoundError("x")) is None
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except ConnectionRefusedError as cause:
            raise FileNotFoundError("x") from cause
    except FileNotFoundError as e:
        assert unreachable(e).startswith("cannot connect (ConnectionRefusedError")
