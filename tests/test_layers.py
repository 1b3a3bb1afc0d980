"""
Tests for the layering contracts in C{.importlinter}: the import graph of
L{novasvc} keeps them, and a wrong import breaks them.
"""

import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

import novasvc

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = os.path.join(_ROOT, ".importlinter")
_README = os.path.join(_ROOT, "README.rst")


def _lint(cwd: str) -> subprocess.CompletedProcess:
    """
    Run import-linter's C{lint-imports} on the C{novasvc} package found from
    C{cwd}.

    @param cwd: a folder holding a C{novasvc} package.
    @return: the finished process, its output as text.
    """
    command = [sys.executable, "-c",
               "import sys; from importlinter.cli import lint_imports_command as c; "
               "sys.exit(c())", "--config", _CONFIG, "--no-cache"]
    env = dict(os.environ, PYTHONPATH=cwd)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


class LayersTests(SynchronousTestCase):
    """
    The contracts of C{.importlinter} hold for the tree and catch a breach.
    """

    def setUp(self) -> None:
        self.tree = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tree)
        shutil.copytree(os.path.dirname(novasvc.__file__), os.path.join(self.tree, "novasvc"),
                        ignore=shutil.ignore_patterns("__pycache__"))

    def test_kept(self) -> None:
        """
        When the contracts are checked on novasvc as it is, then every one
        is kept.
        """
        result = _lint(self.tree)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("0 broken", result.stdout)

    def test_wrongImportBreaksLayers(self) -> None:
        """
        When the transport imports the RPC layer, then the layers contract
        and the transport's forbidden contract are both reported broken.
        """
        path = os.path.join(self.tree, "novasvc", "transport", "topology.py")
        with open(path, "a", encoding="utf-8") as module:
            module.write("\nimport novasvc.rpc.target  # noqa: deliberately wrong\n")
        result = _lint(self.tree)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("novasvc.transport.topology -> novasvc.rpc.target", result.stdout)
        self.assertIn("BROKEN", result.stdout)
        self.assertIn("2 broken", result.stdout)

    def test_coreImportingAPIBreaks(self) -> None:
        """
        When the core imports the API, then the contracts are reported
        broken.
        """
        path = os.path.join(self.tree, "novasvc", "core", "manager.py")
        with open(path, "a", encoding="utf-8") as module:
            module.write("\nimport novasvc.api.site  # noqa: deliberately wrong\n")
        result = _lint(self.tree)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("novasvc.core.manager -> novasvc.api.site", result.stdout)


def _contract_layers() -> list:
    """
    @return: the layers of C{.importlinter}'s C{layers} contract, top down,
        each a line as written there.
    """
    parser = configparser.ConfigParser()
    parser.read(_CONFIG, encoding="utf-8")
    raw = parser["importlinter:contract:layers"]["layers"]
    return [" ".join(line.split()) for line in raw.splitlines() if line.strip()]


def _readme_layers() -> list:
    """
    @return: the layers README's "Layout" diagram draws, top down: the first
        column of each row of its literal block.
    """
    with open(_README, encoding="utf-8") as readme:
        text = readme.read()
    section = text[text.index("\nLayout\n------\n"):]
    block = section[section.index("::\n\n") + 4:]
    layers = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("    "):
            break
        if line.startswith("    ") and not line.startswith("     "):
            layers.append(" ".join(re.split(r" {2,}", line.strip())[0].split()))
    return layers


class ReadmeLayoutTests(SynchronousTestCase):
    """
    README's "Layout" draws the layers the contracts enforce.
    """

    def test_sameLayers(self) -> None:
        """
        When README's layout diagram is read row by row, then its rows are
        the layers of the C{layers} contract, in the same order.
        """
        self.assertEqual(_readme_layers(), _contract_layers())
