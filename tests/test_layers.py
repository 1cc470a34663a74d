"""The core's layering rules, checked so that they cannot rot.

``lint-imports`` (import-linter, contracts in pyproject.toml) checks which module may import which. It
cannot see *what* is imported, so this test adds the other half of the rule: a module of the package uses
another module only through its public names. A name starting with ``_`` (dunder names such as
``__version__`` excepted) is private to its module; a private module (``integrations/_common.py``) is
private to its package and the packages below it.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers import missing_prerequisite

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "agent_otel"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(module, path).split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _violations(module: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _package_of(module, path)
    found: list[str] = []
    module_names: set[str] = set()  # local names bound to a module of the package

    def where(node: ast.AST) -> str:
        return f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"

    def check_path(target: str, node: ast.AST) -> None:
        # A private module may be used from its own package (and the packages inside it) only.
        parts = target.split(".")
        for i, part in enumerate(parts):
            if _private(part):
                owner = ".".join(parts[:i])
                if not (package == owner or package.startswith(owner + ".")):
                    found.append(f"{where(node)} imports the private module {target}")
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            check_path(target, node)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if _private(alias.name):
                    if any(full == m for m, _ in _modules()):
                        check_path(full, node)  # a private submodule, e.g. ``from . import _common``
                    elif target != module:
                        found.append(f"{where(node)} imports the private name {alias.name} from {target}")
                if any(full == m for m, _ in _modules()):
                    module_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    check_path(alias.name, node)
                    module_names.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        # ``mod._name`` where ``mod`` is a module of the package bound by an import above.
        if (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_names
        ):
            found.append(f"{where(node)} uses the private name {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_a_private_name_of_another_module():
    violations = [v for module, path in _modules() for v in _violations(module, path)]
    assert violations == [], "\n".join(violations)


def test_the_check_finds_what_it_looks_for(tmp_path):
    """The scan itself: each kind of violation is reported, and the allowed forms are not."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "_version.py").write_text("__version__ = '1'\n")
    (pkg / "core.py").write_text("_hidden = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "_helpers.py").write_text("x = 1\n")
    (pkg / "sub" / "user.py").write_text(
        "from agent_otel._version import __version__\n"  # dunder: allowed
        "from ._helpers import x\n"  # its own package's private module: allowed
        "from agent_otel.core import _hidden\n"  # a private name: reported
        "from agent_otel import core\n"
        "y = core._hidden\n"  # a private attribute of a module: reported
    )
    (pkg / "other.py").write_text("from agent_otel.sub._helpers import x\n")  # another package's: reported
    module = sys.modules[__name__]
    saved = module.SRC
    module.SRC = tmp_path
    try:
        found = [v for name, path in _modules() for v in _violations(name, path)]
    finally:
        module.SRC = saved
    assert len(found) == 3, found
    assert any("private name _hidden from agent_otel.core" in v for v in found)
    assert any("core._hidden" in v for v in found)
    assert any("private module agent_otel.sub._helpers" in v and "other.py" in v for v in found)


def test_import_linter_contracts_hold():
    """The layer order of pyproject.toml ([tool.importlinter]); ``make lint`` runs the same command."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        missing_prerequisite("import-linter (lint-imports)", "make install-dev")
    root = SRC.parent
    out = subprocess.run([exe, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_readme_draws_the_layers_that_are_checked():
    """README, Development > Layers: the drawing lists the contract's layers, in its order."""
    root = SRC.parent
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    readme = (root / "README.md").read_text()
    block = readme.split("### Layers", 1)[1].split("```", 2)[1]
    drawn = [re.split(r"\s{2,}", line.strip())[0] for line in block.strip().splitlines()]
    assert drawn == [layer for layer in layers if layer != "_version"]
