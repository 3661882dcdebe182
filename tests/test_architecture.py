"""The house's rules, read from the code itself (docs/ARCHITECTURE.md):

- the import graph of the project's modules, module-level and function-level imports alike
  (and the names given to ``lazy_import`` or ``importlib.import_module``), has no cycle;
- no module of pipeline/ is over 400 lines, no function over 60;
- no benchmark or study code inside the library, and no project module imports another's private
  names;
- params validation, which every stage runs first, loads neither torch nor numba;
- each DVC stage's code deps cover its command's import closure, where a method built by name
  (``build_method("scratch", ...)``) imports that method's file and one looked up from params
  (``METHODS[name]``, ``build_method(name, ...)``) any method's file.
"""
import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from conftest import REPO, subprocess_env

PACKAGES = ("pipeline", "stages", "benchmarks")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str, level: int, here: str, is_package: bool) -> str:
    if not level:
        return name
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _targets(module: str, path: Path) -> set[str]:
    """The project modules `module` imports, wherever in the file the import stands."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, module, is_package)
            names |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                      for alias in node.names}
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
              in ("lazy_import", "import_module") and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value).partition(":")[0])
        if module != "pipeline.distill.base":  # the registry's own lookups load what its callers name
            names |= _methods_loaded(node)
    # a name of a module's attribute (pipeline.x.y where y is not a module) counts as pipeline.x
    resolved = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            resolved.add(name)
    return resolved


METHOD_FILES = sorted(m for m in MODULES if m.startswith("pipeline.distill.methods."))


def _methods_loaded(node: ast.AST) -> set[str]:
    """The method files a node loads through pipeline.distill.METHODS (lazy, one per method)."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "build_method":
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Constant):
            return {f"pipeline.distill.methods.{first.value}"}
        return set(METHOD_FILES)
    if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "METHODS":
        return set(METHOD_FILES)
    if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "METHODS" and node.attr in ("get", "lookup"):
        return set(METHOD_FILES)
    return set()


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for module, path in MODULES.items():
        graph.add_node(module)
        graph.add_edges_from((module, target) for target in _targets(module, path))
    return graph


def test_the_import_graph_has_no_cycle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles)


def test_no_module_or_function_of_the_library_is_too_long():
    long = []
    for module, path in MODULES.items():
        if not module.startswith("pipeline"):
            continue
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, long


def test_no_benchmark_or_study_code_in_the_library():
    names = [m for m in MODULES if m.startswith("pipeline") and any(w in m for w in ("bench", "study"))]
    assert not names


def test_no_module_imports_another_modules_private_names():
    private = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PACKAGES)):
                private += [f"{module}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert not private, private


def test_validating_params_loads_no_torch_or_numba(tmp_path):
    code = ("import sys\nfrom pipeline.params import load_params\nload_params()\n"
            "print(sorted(m for m in ('torch', 'numba', 'scipy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["pipeline.distill", "pipeline.models", "pipeline.topology"])
def test_registries_know_their_names_without_torch(module):
    code = (f"import sys, importlib\nm = importlib.import_module({module!r})\n"
            "print('torch' in sys.modules or 'numba' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _stage_commands() -> dict[str, tuple[str, list[str]]]:
    """dvc.yaml's stages: name -> (the module its cmd runs, its deps)."""
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    found = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        module = body["cmd"].split("-m ", 1)[1].split()[0]
        found[name] = (module, [str(d) for d in body.get("deps", [])])
    return found


def _stage_closure(module: str) -> set[str]:
    """The modules a stage's command runs: its import closure, less what params validation loads.
    The whole-file validation every stage runs first can refuse params, never change an output (a
    params change is tracked by the stage's params): its own imports are not code deps."""
    graph = import_graph()
    graph.remove_edges_from(list(graph.out_edges("pipeline.params")))
    return ({module} | nx.descendants(graph, module)) - {"pipeline.params"}


@pytest.mark.parametrize("stage", sorted(_stage_commands()))
def test_every_stage_depends_on_the_code_it_imports(stage):
    """A stage's outputs go stale when any module it imports changes: its deps in dvc.yaml must
    cover its command's whole import closure (a file, or a folder above it)."""
    module, deps = _stage_commands()[stage]
    closure = _stage_closure(module)
    files = {str(MODULES[m].relative_to(REPO)) for m in closure}
    missed = sorted(f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))
    assert not missed, f"dvc.yaml stage {stage} misses code deps: {missed}"


@pytest.mark.parametrize("stage", ["train_teacher", "train_student"])
def test_a_new_or_edited_method_never_retrains_a_teacher_or_scratch(stage):
    """The stages that train with cross-entropy alone import no distillation method's file but
    scratch's, and their deps say so: editing kd.py, or adding a method, keeps their outputs
    (and DVC's run cache entries) valid."""
    module, deps = _stage_commands()[stage]
    closure = _stage_closure(module)
    assert sorted(m for m in closure if m in METHOD_FILES) == ["pipeline.distill.methods.scratch"]
    assert not [d for d in deps if d.rstrip("/") in ("pipeline", "pipeline/distill", "pipeline/distill/methods")]
