"""
Lazy exports for a package's facade (PEP 562): a name is imported from its
module on first use, so importing the package stays cheap.

Imports nothing from novasvc.
"""

import importlib
from typing import Any, Callable, Dict, List, Mapping, Tuple

__all__ = ["lazy_attribute", "lazy_exports"]


def lazy_attribute(package: str, namespace: Dict[str, Any], exports: Mapping[str, str],
                    name: str) -> Any:
    """
    The body of a package's C{__getattr__} (PEP 562) for the names it
    exports from its modules, each imported on first use (L{novasvc}'s,
    L{novasvc.rpc}'s, L{novasvc.notify}'s and L{novasvc.tracing}'s).

    @param package: the package's dotted name, for the error.
    @param namespace: the package's C{globals()}: the value is kept there,
        so the next lookup skips C{__getattr__}.
    @param exports: each exported name -> the dotted name of its module.
    @param name: the name looked up.
    @return: the object C{name} is in its module.
    @raise AttributeError: if the package does not export C{name}.
    """
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value


def lazy_exports(package: str, namespace: Dict[str, Any], exports: Mapping[str, str]
                 ) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """
    A package's C{__getattr__} and C{__dir__} (PEP 562) for the names it
    exports from its modules, each imported on first use
    (L{lazy_attribute}); a package's C{__init__} says::

        __getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

    @param package: the package's dotted name, for the error.
    @param namespace: the package's C{globals()}.
    @param exports: each exported name -> the dotted name of its module.
    @return: the two functions; C{__dir__} lists the package's globals and
        its C{__all__} (or else C{exports}).
    """
    def getattr_(name: str) -> Any:
        return lazy_attribute(package, namespace, exports, name)

    def dir_() -> List[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", exports)))

    return getattr_, dir_
