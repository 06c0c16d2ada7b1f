"""Shared test setup: tests/ on sys.path (for tests/factories.py), few threads on a small machine."""
import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
os.environ.setdefault("OMP_NUM_THREADS", "1")
