import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_a_changed_config_on_resume_is_refused_unless_named(survives):
    assert survives("resume_changes")
