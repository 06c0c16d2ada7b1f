import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_sigkill_mid_pretraining_then_resume_auto_reaches_the_exact_final_step(survives):
    (row,) = survives("pretrain_kill")
    assert row.tries >= 1
