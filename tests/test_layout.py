"""The package's layering: subpackages are the stages of the data's flow, and imports follow it.

Read from the package's own source (ast), so the layout in the README stays true: no module
imports a later stage or a command, no import cycle exists, only commands sit at the top level,
and importing the library leaves global state (Pyro settings, matplotlib's backend) alone.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayes_bps"
# The stages in the order data flows through them; a stage may import itself and earlier stages.
STAGES = ["utils", "data", "base", "steering", "bayes", "training", "sampling", "pipelines", "metrics", "experiments",
          "viz"]
COMMANDS = {"fit", "sample", "study", "pretrain", "extract", "export"}


def _module_name(path: Path) -> str:
    parts = ["bayes_bps", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(name: str) -> bool:
    return (PACKAGE.joinpath(*name.split(".")[1:]) / "__init__.py").is_file()


def _exists(name: str) -> bool:
    relative = name.split(".")[1:]
    return _is_package(name) or PACKAGE.joinpath(*relative).with_suffix(".py").is_file()


def _imports(source: str, name: str, is_package: bool = False) -> set[str]:
    """Every bayes_bps module that module `name` (with this source) imports, anywhere in the
    file: lazy imports and TYPE_CHECKING blocks included."""
    found = set()
    package = name if is_package else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("bayes_bps"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                source = ".".join(anchor + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith("bayes_bps"):
                continue
            for alias in node.names:  # `from pkg import module` imports the module itself
                child = f"{source}.{alias.name}"
                found.add(child if _exists(child) else source)
    return found - {name}


MODULES = {_module_name(path): _imports(path.read_text(), _module_name(path), path.name == "__init__.py")
           for path in sorted(PACKAGE.rglob("*.py"))}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def _against_the_flow(module: str, targets: set[str]) -> list[str]:
    """The imports of `module` that reach a later stage or a command."""
    stage = STAGES.index(_stage(module))
    return sorted(t for t in targets if _stage(t) is None or STAGES.index(_stage(t)) > stage)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> imported modules) as a path, or None."""
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state and (cycle := visit(target, [*trail, target])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_every_module_belongs_to_a_stage_or_is_a_command():
    strays = [m for m in MODULES if m != "bayes_bps" and _stage(m) is None and m.split(".")[1] not in COMMANDS]
    assert strays == [], f"modules outside the stages {STAGES}: {strays}"
    assert {m.split(".")[1] for m in MODULES if m.count(".") == 1 and _stage(m) is None} == COMMANDS


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _stage(m)))
def test_imports_follow_the_stage_order(module):
    later = _against_the_flow(module, MODULES[module])
    assert later == [], f"{module} (stage {_stage(module)!r}) imports later stages or commands: {later}"


def test_there_are_no_import_cycles():
    cycle = _find_cycle(MODULES)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_checks_flag_a_backwards_import_and_a_cycle():
    """Controls: the same checks fail on a relative import of a later stage, a lazy import of a
    command, and the cycle this issue found (fit_options -> sample -> runs -> fit_options)."""
    lazy = "def f():\n    from ..fit import main\n"
    backwards = _imports("from ..training import FitOptions\n" + lazy, "bayes_bps.data.probe")
    assert _against_the_flow("bayes_bps.data.probe", backwards) == ["bayes_bps.fit", "bayes_bps.training"]
    cycle = _find_cycle({"fit_options": {"sample"}, "sample": {"runs"}, "runs": {"fit_options"}})
    assert cycle == ["fit_options", "sample", "runs", "fit_options"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.slow
def test_importing_the_library_changes_no_global_state():
    code = """
import importlib, pkgutil
import matplotlib, pyro, torch
import bayes_bps
before = (matplotlib.rcParams._get_backend_or_none(), pyro.settings.get("module_local_params"),
          torch.get_num_threads())
for info in pkgutil.walk_packages(bayes_bps.__path__, "bayes_bps."):
    importlib.import_module(info.name)
after = (matplotlib.rcParams._get_backend_or_none(), pyro.settings.get("module_local_params"),
         torch.get_num_threads())
assert before == after, (before, after)
print("unchanged", after)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "unchanged" in result.stdout, result.stderr[-2000:]
