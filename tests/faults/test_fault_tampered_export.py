import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_tampered_export_folders_are_one_line(survives):
    assert survives("tampered_export")
