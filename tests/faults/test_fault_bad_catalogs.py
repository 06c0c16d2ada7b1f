import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_bad_catalogs_give_a_clear_error_or_a_rejection_report_never_a_traceback(survives):
    rows = survives("bad_catalogs")
    assert len(rows) >= 8
