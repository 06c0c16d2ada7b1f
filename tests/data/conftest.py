"""Stream tests resolve config paths from the repository root, as the CLI does there."""
import pytest


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)
