import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_one_writer_per_out_dir_and_out_dir_errors_are_one_line(survives):
    rows = survives("out_dir_guard")
    assert {r.fault.split(" (")[0] for r in rows} >= {"two `prepare` runs into one --out",
                                                     "stale --out lock after SIGKILL", "no inodes left"}


def test_hostile_catalogs_are_stored_converted_or_rejected_by_row(survives):
    rows = survives("hostile_data")
    assert sum(r.fault.startswith("hostile catalog: 16-bit") for r in rows) == 3


def test_readers_refuse_tampered_manifests(survives):
    rows = survives("tampered_manifests")
    assert len(rows) == 6
