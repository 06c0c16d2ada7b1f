"""Paths tests share (imported by name: conftest modules shadow each other across folders)."""
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
REPO = TESTS.parent
