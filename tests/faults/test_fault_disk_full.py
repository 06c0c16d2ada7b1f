import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_a_full_disk_fails_clearly_and_keeps_the_previous_checkpoint_and_shards(survives):
    rows = survives("disk_full")
    assert {r.fault.split(": ")[1] for r in rows} == {"checkpoint write", "shard write"}
