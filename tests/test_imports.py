"""Which way imports run: tools -> jobs -> the library's wings; no cycles; torch only where a model is trained,
run by torch or exported; ``alfine.jobs`` imported by nothing in the library. Read from the source (ast)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "alfine"
TOOLS = ROOT / "tools"
TORCH = ("torch", "onnx", "onnxscript")
TORCH_WINGS = ("alfine.architectures", "alfine.tasks.losses", "alfine.training", "alfine.inference.torch_model",
               "alfine.inference.export")
"""The modules (and packages) that may import torch at import time."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(LIB.rglob("*.py"))}
MODULE_NAMES = set(MODULES)


def _imports(path: Path, name: str, top_level_only: bool) -> set[str]:
    """The modules ``path`` (module ``name``) imports, relative imports resolved; only those run on import when
    ``top_level_only`` (not inside functions or ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULE_NAMES
            found |= submodules  # `from . import records` imports the module, not more of its package
            if len(submodules) < len(node.names):
                found.add(base)
    return found




def _graph(top_level_only: bool) -> dict[str, set[str]]:
    return {name: {m for m in _imports(path, name, top_level_only) if m in MODULES and m != name}
            for name, path in MODULES.items()}


def test_nothing_in_the_library_imports_jobs():
    offenders = {name: sorted(m for m in imports if m.startswith("alfine.jobs"))
                 for name, imports in _graph(top_level_only=False).items() if not name.startswith("alfine.jobs")}
    assert not {k: v for k, v in offenders.items() if v}


@pytest.mark.parametrize("tool", sorted(p.stem for p in TOOLS.glob("*.py") if p.stem not in ("__init__", "dispatch")))
def test_a_tool_calls_its_job_and_nothing_else_of_the_library(tool):
    imports = {m for m in _imports(TOOLS / f"{tool}.py", f"alfine_tools.{tool}", False) if m.startswith("alfine")}
    assert any(m.startswith("alfine.jobs.") for m in imports), imports
    allowed = ("alfine.cli", "alfine.jobs", "alfine.errors")
    assert {m for m in imports if m != "alfine" and not m.startswith(allowed)} == set()


def test_the_library_has_no_import_cycles():
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for other in sorted(graph[node]):
            if state.get(other) == 1:
                cycles.append(path[path.index(other):] + [other])
            elif other not in state:
                visit(other, path + [other])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles


def test_training_validation_and_inference_do_not_import_each_other_in_a_circle():
    graph = _graph(top_level_only=False)

    def reaches(source: str, target: str) -> bool:
        edges = {m.split(".")[1] for name, imports in graph.items() if name.split(".")[1:2] == [source]
                 for m in imports if len(m.split(".")) > 1}
        return target in edges

    assert not reaches("training", "validation")  # the trainer validates through a hook jobs/train.py gives it
    assert not reaches("inference", "validation")


def test_torch_is_imported_only_by_the_wings_that_train_run_or_export_models():
    graph = _graph(top_level_only=True)
    direct = {name for name, path in MODULES.items()
              if any(m.split(".")[0] in TORCH for m in _imports(path, name, top_level_only=True))}
    assert direct and all(name.startswith(TORCH_WINGS) for name in direct), sorted(direct)

    def loads_torch(name: str, seen: set[str]) -> bool:
        if name in direct:
            return True
        seen.add(name)
        return any(loads_torch(m, seen) for m in graph[name] if m not in seen)

    free = [name for name in MODULES if not name.startswith(TORCH_WINGS)]
    assert [name for name in free if loads_torch(name, set())] == []


def test_the_readme_leads_from_every_command_to_its_body():
    import re

    from alfine_tools.dispatch import COMMANDS

    text = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `alfine-([a-z-]+)` \| `(lib/alfine/jobs/[a-z_]+\.py)` \|$", text, re.MULTILINE))
    assert set(rows) == set(COMMANDS)
    for command, body in rows.items():
        assert (ROOT / body).is_file(), body
        tool = TOOLS / f"{command.replace('-', '_')}.py"
        job = "alfine.jobs." + Path(body).stem
        assert job in _imports(tool, f"alfine_tools.{tool.stem}", top_level_only=False), (command, job)
