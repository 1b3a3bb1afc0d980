"""
Register entry points for a test, as an installed package would: a
C{.dist-info} directory with an C{entry_points.txt}, on C{sys.path} until
the test ends, which L{importlib.metadata} finds like any other.
"""

import os
import sys
from typing import Dict

from twisted.trial.unittest import SynchronousTestCase


def install_entry_points(case: SynchronousTestCase, groups: Dict[str, Dict[str, str]],
                         name: str = "novasvc_test_drivers") -> str:
    """
    @param case: the test; the directory leaves C{sys.path} at its cleanup.
    @param groups: group -> alias -> C{"pkg.mod:Name"}.
    @param name: the distribution's name.
    @return: the directory put on C{sys.path}.
    """
    root = os.path.abspath(case.mktemp())
    info = os.path.join(root, f"{name}-1.0.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    with open(os.path.join(info, "entry_points.txt"), "w", encoding="utf-8") as f:
        for group, aliases in groups.items():
            f.write(f"[{group}]\n")
            for alias, value in aliases.items():
                f.write(f"{alias} = {value}\n")
    sys.path.append(root)
    case.addCleanup(sys.path.remove, root)
    return root
