"""
Tests for the C{novasvc} package's public facade.
"""

import os
import re
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import novasvc

_README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.rst")


class FacadeTests(SynchronousTestCase):
    """
    C{from novasvc import ...} gives exactly what the README documents.
    """

    def test_matchesReadme(self) -> None:
        """
        When the README's "Public API" list is read, then it names exactly
        the facade's C{__all__}.
        """
        with open(_README, encoding="utf-8") as f:
            text = f.read()
        section = text.split("Public API\n----------\n\n", 1)[1].split("\n\n", 1)[0]
        self.assertEqual(sorted(re.findall(r"``(\w+)``", section)), sorted(novasvc.__all__))

    def test_everyNameResolves(self) -> None:
        """
        When each exported name is looked up, then it is the object its
        module defines.
        """
        import importlib

        for name in novasvc.__all__:
            module = importlib.import_module(novasvc._EXPORTS[name])
            self.assertIs(getattr(novasvc, name), getattr(module, name), name)
        self.assertLessEqual(set(novasvc.__all__), set(dir(novasvc)))

    def test_unknownName(self) -> None:
        """
        When a name that is not exported is looked up, then
        C{AttributeError} is raised.
        """
        self.assertRaises(AttributeError, getattr, novasvc, "NoSuchThing")

    def test_lazy(self) -> None:
        """
        When C{novasvc} is imported, then only its two tiny helpers
        (C{_lazy}, C{_version}) come with it, not its service and RPC
        modules (they load on first use).
        """
        code = ("import sys, novasvc; "
                "print(sorted(m for m in sys.modules if m.startswith('novasvc.')))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(_README)).stdout
        self.assertEqual(out.strip(), "['novasvc._lazy', 'novasvc._version']")
