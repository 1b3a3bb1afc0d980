"""
A module that defines a manager class and no function: what
C{--manager=pkg.module} names when the class name was forgotten.
"""

from novasvc.core.manager import Manager


class StockManager(Manager):
    """
    Never served by module path.
    """

    topic = "stock"

    def count(self, ctxt):
        return 0
