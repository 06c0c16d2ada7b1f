"""One quick-size fault context per test session, so the clean shard set and the baseline
pretraining run are made once and shared by every fault class."""
import pytest

from benchmarks.faults import FAULTS, run_fault
from benchmarks.faults.harness import Ctx


@pytest.fixture(scope="session")
def fault_ctx(tmp_path_factory):
    return Ctx(tmp_path_factory.mktemp("faults"), quick=True, seed=0)


@pytest.fixture
def survives(fault_ctx):
    """Run one fault class; fail listing every row that did not survive, with its detail."""
    def check(name: str):
        rows = [r for f in FAULTS[name] for r in run_fault(f, fault_ctx)]
        assert rows, f"fault class {name} produced no rows"
        failed = [f"{r.fault}: {r.survived}/{r.tries} survived, {r.data_lost} lost: {r.detail}" for r in rows if not r.ok]
        assert not failed, "\n".join(failed)
        return rows
    return check
