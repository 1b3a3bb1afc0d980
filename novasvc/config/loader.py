# -*- test-case-name: tests.test_config_loader -*-
"""
Import the objects that configuration names by dotted path: managers
(C{--manager}, C{<topic>_manager}) and drivers.

A path is C{"pkg.mod.Name"}, C{"pkg.mod:Name"} (the colon marks where the
module ends, as in setuptools entry points) or a plain module path
C{"pkg.mod"}. Every failure is a L{LoadError} saying what could not be
imported and why: the module does not exist, the module has no such
attribute, or importing the module raised an exception.

A driver may also be named by a short alias, as Nova and the oslo
libraries name theirs: an entry point in a group per interface (for
example C{novasvc.volume.drivers}: C{fake}, C{file}), registered by the
package that ships the driver and read with L{importlib.metadata}
(L{driver_aliases}, L{resolve_driver}).
"""

import difflib
import importlib
import importlib.metadata
import inspect
import re
import sys
import traceback
from types import ModuleType
from typing import Any, Dict, List, Mapping, Optional, Tuple

from zope.interface.exceptions import (
    BrokenImplementation,
    BrokenMethodImplementation,
    DoesNotImplement,
    Invalid,
    MultipleInvalid,
)
from zope.interface.interface import InterfaceClass, Method
from zope.interface.verify import verifyObject

from novasvc.exceptions import LoadError

__all__ = ["is_dotted_path", "load_object", "load_driver", "create_object", "describe_object",
           "driver_aliases", "resolve_driver"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_NAME}(?:\.{_NAME})*"
_PATH = re.compile(rf"({_DOTTED})(?::({_DOTTED}))?")


def is_dotted_path(text: Any) -> bool:
    """
    @param text: a candidate path.
    @return: C{True} if C{text} is a string of the form L{load_object}
        accepts (C{pkg.mod}, C{pkg.mod.Name} or C{pkg.mod:Name}); nothing is
        imported.
    """
    return isinstance(text, str) and _PATH.fullmatch(text) is not None


def load_object(path: str) -> Any:
    """
    Import the object named by C{path}.

    Without a colon the longest importable module prefix is imported and the
    rest of the path is looked up as attributes on it; with a colon the part
    before it must be a module and the part after it is looked up on it.

    @param path: C{"pkg.mod.Name"}, C{"pkg.mod:Name"} (also
        C{"pkg.mod:Outer.Inner"}) or C{"pkg.mod"}.
    @type path: C{str}
    @return: the class, function or other object found, or the module object
        for a plain module path.
    @raise LoadError: if C{path} is malformed, a module does not exist, an
        attribute is missing, or importing a module raised an exception (the
        message names the exception and where it was raised; the original is
        chained as C{__cause__}).
    """
    match = _PATH.fullmatch(path) if isinstance(path, str) else None
    if match is None:
        raise LoadError(
            f"cannot load {path!r}: not a dotted path "
            "(expected 'package.module.Name', 'package.module:Name' or 'package.module')"
        )
    module_path, attributes = match.group(1), match.group(2)
    if attributes is not None:
        module, _ = _import(path, module_path, strict=True)
        return _walk(path, module, module_path, attributes.split("."))
    module, imported = _import(path, module_path, strict=False)
    if module is None:
        # The top-level package itself does not exist.
        raise LoadError(f"cannot load {path!r}: no module named {imported!r}")
    rest = module_path[len(imported) + 1:]
    return _walk(path, module, imported, rest.split(".") if rest else [])


def driver_aliases(group: Optional[str]) -> Dict[str, str]:
    """
    The drivers installed under short names in an entry point group.

    @param group: the entry point group, e.g. C{"novasvc.volume.drivers"};
        C{None} for none.
    @return: alias -> the entry point's value (C{"pkg.mod:Name"}), sorted
        by alias; the first of two entry points with one name wins.
    """
    if not group:
        return {}
    found: Dict[str, str] = {}
    for point in importlib.metadata.entry_points(group=group):
        found.setdefault(point.name, point.value)
    return dict(sorted(found.items()))


def resolve_driver(value: str, group: Optional[str]) -> str:
    """
    Turn what a L{novasvc.config.options.DriverOpt} says into a dotted path.

    @param value: an alias of C{group} (C{"file"}) or a dotted path
        (C{"pkg.drivers.FileDriver"}); an alias wins over a top-level module
        of the same name.
    @param group: the entry point group of the option's interface, or
        C{None}.
    @return: the dotted path (C{"pkg.mod:Name"} for an alias).
    @raise LoadError: if C{value} has no dot, is not an alias of C{group}
        and C{group} is given: the message lists the close aliases, or all
        of them (an interface has few drivers).
    """
    aliases = driver_aliases(group)
    if value in aliases:
        return aliases[value]
    if group and "." not in value and ":" not in value:
        close = difflib.get_close_matches(value, list(aliases), n=3)
        hint = (f"did you mean {' or '.join(repr(c) for c in close)}? " if close else "")
        installed = ", ".join(aliases) or "none"
        raise LoadError(f"no driver named {value!r} in entry point group {group!r} "
                        f"({hint}installed: {installed}; or give a dotted path such as "
                        "mypackage.drivers.FileDriver)")
    return value


def load_driver(path: str, iface: InterfaceClass, *args: Any,
                offer: Mapping[str, Any] = {}, group: Optional[str] = None,
                **kwargs: Any) -> Any:
    """
    Load a driver and check that it provides C{iface}.

    The object at C{path} is used as L{create_object} says: a module or an
    instance is the driver itself; a class or other callable is a factory
    whose result is the driver. The driver must declare C{iface}
    (C{@implementer}, or C{moduleProvides} for a module) and have every
    attribute and method of it with a compatible signature, as
    C{zope.interface.verify.verifyObject} checks.

    @param path: the dotted path (see L{load_object}), or an alias of
        C{group} (see L{resolve_driver}).
    @param iface: the zope interface the driver must provide.
    @param args: positional arguments for the factory.
    @param offer: keyword arguments passed to the factory only if its
        signature accepts them (e.g. C{config}, C{db}).
    @param group: the entry point group of C{iface}'s drivers, for aliases.
    @param kwargs: keyword arguments for the factory.
    @return: the driver.
    @raise LoadError: if the path cannot be loaded, the factory raised (the
        original exception is chained), or the driver does not provide
        C{iface}; the message names each missing or incompatible method or
        attribute and the interface.
    """
    driver = create_object(path, load_object(resolve_driver(path, group)), "driver", *args,
                           offer=offer, **kwargs)
    try:
        verifyObject(iface, driver)
    except Invalid as e:
        name = iface.__identifier__
        problems = "; ".join(_describe(problem, iface) for problem in _problems(e))
        raise LoadError(f"driver {path!r} does not provide {name}: {problems}") from e
    return driver


def create_object(path: str, found: Any, what: str, *args: Any,
                  offer: Mapping[str, Any] = {}, **kwargs: Any) -> Any:
    """
    Turn what a dotted path names into the component it stands for, as
    Nova's documentation says of managers and drivers: "singletons,
    classes, modules or objects". A module, or an object that is not
    callable, is the component itself; a class or other callable is a
    factory, called as C{found(*args, **kwargs, **accepted)} where
    C{accepted} are the entries of C{offer} that its signature takes.

    @param path: the dotted path, for messages.
    @param found: the object L{load_object} returned for it.
    @param what: C{"manager"} or C{"driver"}, for messages.
    @return: the component.
    @raise LoadError: if calling the factory raised; the message names the
        path, what it is, the arguments and the exception (chained).
    """
    if inspect.ismodule(found) or not callable(found):
        return found
    accepted = _accepted(found, offer)
    try:
        return found(*args, **kwargs, **accepted)
    except Exception as e:
        shown = ", ".join([*(repr(a) for a in args),
                           *(f"{k}=..." for k in (*kwargs, *accepted))])
        raise LoadError(
            f"cannot create {what} {path!r}: calling {describe_object(found)}({shown}) "
            f"raised {type(e).__name__}: {_cut(str(e))}{_where(e)}"
        ) from e


def describe_object(found: Any) -> str:
    """
    @return: a few words saying what C{found} is, e.g. C{"class
        pkg.mod.Name"}, C{"function os.path.join"}, C{"module os"} or
        C{"str instance"}.
    """
    if inspect.ismodule(found):
        return f"module {found.__name__}"
    name = f"{getattr(found, '__module__', None) or '?'}.{getattr(found, '__qualname__', '?')}"
    if inspect.isclass(found):
        return f"class {name}"
    if inspect.isroutine(found):
        return f"function {name}"
    return f"{type(found).__qualname__} instance"


def _accepted(factory: Any, offer: Mapping[str, Any]) -> Mapping[str, Any]:
    """
    @return: the entries of C{offer} that C{factory}'s signature takes by
        keyword (all of them for a C{**kwargs} signature, none when the
        signature cannot be read).
    """
    if not offer:
        return offer
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return offer
    named = {name for name, p in parameters.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return {name: value for name, value in offer.items() if name in named}


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _import(path: str, module_path: str, strict: bool) -> Tuple[Optional[ModuleType], str]:
    """
    Import C{module_path}, or with C{strict=False} its longest importable
    prefix.

    @return: the module and the dotted name it was imported as (which may
        differ from its C{__name__}, as for C{os.path}); or C{None} and the
        first component when not even that exists (only with
        C{strict=False}).
    @raise LoadError: if the module is missing (C{strict}) or its import raised.
    """
    try:
        return importlib.import_module(module_path), module_path
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if not (module_path == missing or module_path.startswith(missing + ".")):
            # The module exists but imports something that does not.
            raise _import_failed(path, module_path, e) from e
        if strict:
            raise LoadError(f"cannot load {path!r}: no module named {missing!r}") from e
        if "." not in missing:
            return None, missing
        # Every package above `missing` was imported on the way; the rest of
        # the path may name attributes of the deepest one.
        parent = missing.rpartition(".")[0]
        return importlib.import_module(parent), parent
    except Exception as e:
        raise _import_failed(path, module_path, e) from e


def _walk(path: str, obj: Any, owner: str, attributes: List[str]) -> Any:
    """
    Look up C{attributes} one after the other, starting from module C{obj}
    imported as C{owner}.
    """
    for attribute in attributes:
        try:
            obj = getattr(obj, attribute)
        except AttributeError:
            if inspect.ismodule(obj) and hasattr(obj, "__path__"):
                raise LoadError(
                    f"cannot load {path!r}: no module named {owner + '.' + attribute!r}"
                ) from None
            what = "module" if inspect.ismodule(obj) else "object"
            raise LoadError(
                f"cannot load {path!r}: {what} {owner!r} has no attribute {attribute!r}"
            ) from None
        owner = f"{owner}.{attribute}"
    return obj


def _import_failed(path: str, module_path: str, error: BaseException) -> LoadError:
    # A module whose import failed is not left in sys.modules: the first
    # such prefix of the path is the one that raised.
    parts = module_path.split(".")
    prefixes = (".".join(parts[:i]) for i in range(1, len(parts) + 1))
    culprit = next((p for p in prefixes if p not in sys.modules), module_path)
    return LoadError(
        f"cannot load {path!r}: importing {culprit!r} raised "
        f"{type(error).__name__}: {error}{_where(error)}"
    )


def _where(error: BaseException) -> str:
    """
    @return: C{" (at file:line)"} for the innermost frame of C{error}'s
        traceback outside the import machinery, or C{""}.
    """
    if isinstance(error, SyntaxError):
        return ""  # its message already names the file and line
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith("<frozen ") and frame.filename != __file__
    ]
    if not frames:
        return ""
    return f" (at {frames[-1].filename}:{frames[-1].lineno})"


def _problems(error: Invalid) -> List[Invalid]:
    if isinstance(error, MultipleInvalid):
        return list(error.exceptions)
    return [error]


def _describe(problem: Invalid, iface: InterfaceClass) -> str:
    """
    @return: one short phrase for one C{verifyObject} complaint.
    """
    if isinstance(problem, DoesNotImplement):
        short = iface.__name__
        return (f"it does not declare {short} (add @implementer({short}) to the class, "
                f"or moduleProvides({short}) to the module)")
    if isinstance(problem, BrokenImplementation):
        desc = problem.name
        name = desc if isinstance(desc, str) else desc.__name__
        kind = "method" if isinstance(desc, Method) or isinstance(iface.get(name), Method) else "attribute"
        return f"missing {kind} {name!r}"
    if isinstance(problem, BrokenMethodImplementation):
        desc = problem.method
        name = desc if isinstance(desc, str) else desc.__name__
        message = problem.mess.replace("implementation", "the implementation")
        return f"method {name!r}: {message}"
    return str(problem)
