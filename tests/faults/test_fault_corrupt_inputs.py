import pytest

pytestmark = pytest.mark.slow  # runs the real CLI in subprocesses


def test_corrupt_images_and_shards_are_reported_skipped_and_named(survives):
    rows = survives("corrupt_inputs")
    names = " ".join(r.fault for r in rows)
    for kind in ("truncated JPEG", "zero-byte", "PNG", "FITS", "truncated tar", "checksum", "during training"):
        assert kind in names
