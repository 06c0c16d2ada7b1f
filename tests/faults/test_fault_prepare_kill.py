import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_sigkill_during_prepare_then_rerun_verifies_with_every_id_once(survives):
    (row,) = survives("prepare_kill")
    assert row.tries >= 1
