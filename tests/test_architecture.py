"""The import graph keeps the layout's promises (DESIGN.md section 3).

Read with `ast` from the source tree, every import (module level, inside functions and under
``TYPE_CHECKING``) is an edge. The rules:

- no import cycle between modules;
- layers only look down: ``quantlib`` < ``explorer.core`` < ``explorer.data`` < features
  (every other ``explorer`` subpackage) < entry points (``app.py``, ``explorer/<name>.py``);
- a logic module (any module not named ``panel``) never imports a panel;
- a feature never imports another feature's panel;
- only panels and ``app.py`` import Streamlit; quantlib imports neither Streamlit, Plotly nor
  explorer.

The checker also runs on small planted trees, so each rule is seen to fail.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOUNDATIONS = ("core", "data")  # explorer subpackages below the features, in layer order
UI_LIBRARIES = ("streamlit",)


@dataclass(frozen=True)
class Module:
    name: str          # dotted, e.g. explorer.compare.panel; "app" for app.py
    path: Path
    is_package: bool

    @property
    def parts(self) -> list[str]:
        return self.name.split(".")

    @property
    def is_panel(self) -> bool:
        return self.parts[-1] == "panel"

    @property
    def feature(self) -> str | None:
        """The explorer subpackage a module belongs to (None for entry points and quantlib)."""
        parts = self.parts
        if parts[0] != "explorer" or len(parts) < 2:
            return None
        is_subpackage_module = len(parts) >= 3 or (self.is_package and len(parts) == 2)
        return parts[1] if is_subpackage_module else None

    @property
    def layer(self) -> int:
        parts = self.parts
        if parts[0] == "quantlib":
            return 0
        if self.name == "app" or (parts[0] == "explorer" and self.feature is None):
            return 4 if self.name != "explorer" else 1
        if self.feature in FOUNDATIONS:
            return 1 + FOUNDATIONS.index(self.feature)
        return 3


def collect_modules(root: Path) -> dict[str, Module]:
    """Every module of ``quantlib/`` and ``explorer/`` under ``root``, plus ``app.py``."""
    modules = {}
    for top in ("quantlib", "explorer"):
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = list(rel.parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            name = ".".join(parts)
            modules[name] = Module(name, path, is_package)
    if (root / "app.py").exists():
        modules["app"] = Module("app", root / "app.py", False)
    return modules


def imported_names(module: Module) -> set[str]:
    """Absolute dotted names a module imports (``from a import b`` yields ``a.b`` and ``a``)."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    found: set[str] = set()
    package = module.parts if module.is_package else module.parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def import_graph(modules: dict[str, Module]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between our modules, external top-level packages each module imports)."""
    edges: dict[str, set[str]] = {name: set() for name in modules}
    external: dict[str, set[str]] = {name: set() for name in modules}
    for name, module in modules.items():
        for target in imported_names(module):
            if target in modules:
                if target != name and not _is_parent_package(target, name):
                    edges[name].add(target)
            elif target.split(".")[0] not in ("explorer", "quantlib"):
                external[name].add(target.split(".")[0])
    return edges, external


def _is_parent_package(target: str, name: str) -> bool:
    return name.startswith(target + ".")


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def violations(root: Path) -> list[str]:
    """Every broken rule in the tree at ``root``, as readable lines."""
    modules = collect_modules(root)
    edges, external = import_graph(modules)
    problems = [f"import cycle: {' <-> '.join(c)}" for c in find_cycles(edges)]
    for name, targets in sorted(edges.items()):
        source = modules[name]
        for target_name in sorted(targets):
            target = modules[target_name]
            if target.layer > source.layer:
                problems.append(f"upward import: {name} (layer {source.layer}) -> "
                                f"{target_name} (layer {target.layer})")
            if target.is_panel and not source.is_panel and source.name != "app":
                problems.append(f"logic imports a panel: {name} -> {target_name}")
            if (target.is_panel and source.feature and target.feature
                    and target.feature not in FOUNDATIONS and target.feature != source.feature):
                problems.append(f"feature imports another feature's panel: {name} -> "
                                f"{target_name}")
    for name, packages in sorted(external.items()):
        module = modules[name]
        ui = sorted(set(packages) & set(UI_LIBRARIES))
        if ui and not (module.is_panel or name == "app"):
            problems.append(f"{name} imports {', '.join(ui)} (only panels and app.py may)")
        if module.parts[0] == "quantlib" and {"streamlit", "plotly"} & packages:
            problems.append(f"{name} imports {sorted({'streamlit', 'plotly'} & packages)}")
    return problems


# --- the real tree ------------------------------------------------------------------------------


def test_the_repository_keeps_every_layout_rule():
    assert violations(REPO) == []


def test_the_checker_sees_every_package_of_the_tree():
    modules = collect_modules(REPO)
    features = {m.feature for m in modules.values() if m.feature}
    assert {"core", "data", "single", "compare", "model", "teach", "share"} <= features
    assert len([m for m in modules.values() if m.is_panel]) >= 7
    assert modules["app"].layer == 4 and modules["quantlib.profiler"].layer == 0


def test_no_explorer_module_is_over_about_400_lines():
    long = {str(p.relative_to(REPO)): n for p in (REPO / "explorer").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 420}
    assert long == {}


# --- planted trees: each rule fails where it should -----------------------------------------------


def plant(root: Path, files: dict[str, str]) -> Path:
    base = {"quantlib/__init__.py": "", "quantlib/lib.py": "",
            "explorer/__init__.py": "", "explorer/core/__init__.py": "",
            "explorer/core/pipeline.py": "import quantlib.lib\n",
            "explorer/data/__init__.py": "", "explorer/data/sources.py": "",
            "explorer/data/panel.py": "import streamlit\n",
            "explorer/alpha/__init__.py": "", "explorer/alpha/logic.py": "",
            "explorer/alpha/panel.py": "import streamlit\nfrom explorer.alpha import logic\n",
            "explorer/beta/__init__.py": "", "explorer/beta/logic.py": "",
            "explorer/beta/panel.py": "import streamlit\n",
            "app.py": "import streamlit\nfrom explorer.alpha import panel\n"}
    for rel, text in {**base, **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_clean_planted_tree_passes(tmp_path):
    assert violations(plant(tmp_path, {})) == []


@pytest.mark.parametrize(("files", "expected"), [
    ({"explorer/alpha/logic.py": "from explorer.beta import logic\n",
      "explorer/beta/logic.py": "from explorer.alpha.logic import thing\n"}, "import cycle"),
    ({"explorer/core/pipeline.py": "def f():\n    from explorer.data import sources\n"},
     "upward import: explorer.core.pipeline"),
    ({"explorer/data/sources.py": "from explorer.alpha import logic\n"},
     "upward import: explorer.data.sources"),
    ({"quantlib/lib.py": "import explorer.core.pipeline\n"}, "upward import: quantlib.lib"),
    ({"explorer/alpha/logic.py": "from . import panel\n"}, "logic imports a panel"),
    ({"explorer/alpha/panel.py": "from explorer.beta.panel import render\n"},
     "another feature's panel"),
    ({"explorer/alpha/logic.py": "import streamlit as st\n"}, "imports streamlit"),
    ({"explorer/core/pipeline.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from explorer.alpha.logic import X\n"}, "upward import"),
    ({"quantlib/lib.py": "import plotly.graph_objects as go\n"}, "imports ['plotly']"),
], ids=["cycle", "core-to-data-in-function", "data-to-feature", "quantlib-to-explorer",
        "logic-to-panel-relative", "feature-to-other-panel", "streamlit-in-logic",
        "type-checking-import", "plotly-in-quantlib"])
def test_each_planted_violation_is_reported(tmp_path, files, expected):
    found = violations(plant(tmp_path, files))
    assert any(expected in line for line in found), found


def test_a_feature_may_use_a_foundation_panel_and_another_features_logic(tmp_path):
    tree = plant(tmp_path, {"explorer/beta/panel.py": "import streamlit\n"
                                                      "from explorer.data import panel\n"
                                                      "from explorer.alpha import logic\n"})
    assert violations(tree) == []
