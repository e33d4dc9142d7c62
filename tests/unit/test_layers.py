"""The import order of the packages is a contract (import-linter, configured in pyproject.toml).

The suite runs the contract on the tree as it is, and on a copy with one deliberate upward import, which
must fail naming that import: a contract that cannot fail holds nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--no-cache"], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def importlinter() -> None:
    pytest.importorskip("importlinter", reason="import-linter is a test extra: pip install '.[test]'")


def test_the_package_keeps_its_import_order(importlinter: None) -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "upward"), [
    ("core/clock.py", "import transferbot.store.models"),            # the core reaching for the database
    ("inbound/wire.py", "import transferbot.outbound.mime"),         # reading mail knowing how we write it
    ("store/paging.py", "import transferbot.app.context"),           # the store reaching for the use cases
])
def test_an_upward_import_breaks_the_contract(importlinter: None, tmp_path: Path, module: str, upward: str) -> None:
    shutil.copytree(ROOT / "transferbot", tmp_path / "transferbot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "transferbot" / module
    target.write_text(target.read_text() + f"\n{upward}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    importer = "transferbot." + module.removesuffix(".py").replace("/", ".")
    assert importer in result.stdout, result.stdout
