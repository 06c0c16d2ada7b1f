"""The package reads as the flow: its top level is the face only, the README's layout section names
every stage folder and module, and no modules import each other in a circle (lazy imports count)."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACE = {"__init__.py", "cli.py", "config.py", "schema.py"}


def _modules(*packages):
    out = {}
    for pkg in packages:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict) -> set:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")] if node.level \
                else []
            mod = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_cycles(*packages) -> list[list[str]]:
    """Strongly connected groups of more than one module in the import graph."""
    modules = _modules(*packages)
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_no_module_imports_itself_through_others():
    assert import_cycles("hybridssl", "data_prep", "benchmarks") == []


def test_the_cycle_finder_sees_a_lazy_circle(tmp_path, monkeypatch):
    pkg = tmp_path / "circle"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circle.b import B\n")
    (pkg / "b.py").write_text("def f():\n    from circle import a\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert import_cycles("circle") == [["circle.a", "circle.b"]]


def test_the_top_level_is_the_face_only():
    loose = sorted(p.name for p in (ROOT / "hybridssl").glob("*.py") if p.name not in FACE)
    assert loose == []


def test_the_readme_layout_names_every_stage_and_module():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    block = section[section.index("hybridssl/"):section.index("\nbenchmarks/")]
    for folder in sorted(p for p in (ROOT / "hybridssl").iterdir() if (p / "__init__.py").is_file()):
        entry = re.search(rf"^  {folder.name}/ +(.*?)(?=^  \S|\Z)", block, re.S | re.M)
        assert entry, f"README layout: no line for hybridssl/{folder.name}/"
        named = set(re.findall(r"[a-z_]+", entry.group(1)))
        listed = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
        listed |= {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
        assert listed <= named, f"README layout, {folder.name}/ misses {sorted(listed - named)}"
