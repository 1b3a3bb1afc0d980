# -*- test-case-name: tests.test_config_options -*-
"""
Options that managers and drivers declare for their own section of the YAML
configuration, as Nova's components register their option groups.

A component (a manager or a driver: a class, a module or an instance)
declares::

    class VolumeManager(Manager):
        config_section = "volume"
        options = (
            DriverOpt("driver", IVolumeDriver,
                      default="novasvc.examples.volume.drivers.FakeVolumeDriver",
                      help="The volume driver."),
            Opt("default_size", int, default=1, minimum=1, help="Size in GiB."),
        )

and the YAML file then holds::

    volume:
      driver: novasvc.examples.volume.drivers.FileVolumeDriver
      default_size: 2

L{novasvc.config.Config.bind} validates each declared section (unknown keys,
wrong types and missing required values are refused with the file, line and
key), fills in the defaults and keeps it as a read-only L{Section}. A
L{DriverOpt} names another component: the driver it selects may declare a
section of its own, validated the same way.
"""

import math
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

import attrs
from zope.interface.interface import InterfaceClass

from novasvc._text import show_value
from novasvc.config.loader import is_dotted_path

__all__ = ["Opt", "DriverOpt", "Section", "REQUIRED", "declared_options", "build_section",
           "OptionError"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of an option that has none: the file must give a value.
REQUIRED: Any = _Required()

_TYPES = (str, int, float, bool, list)


class OptionValueError(ValueError):
    """
    A value was refused; C{args[0]} says what was expected.
    """


@attrs.frozen
class Opt:
    """
    One option of a section.

    @ivar name: the key in the section (C{str}).
    @ivar type: C{str}, C{int}, C{float} (durations: B{seconds}), C{bool} or
        C{list} (of strings).
    @ivar default: the value when the file gives none; L{REQUIRED} makes the
        key mandatory. C{None} is allowed (and then so is C{null} in the file).
    @ivar help: one sentence for humans (C{etc/} and error messages).
    @ivar choices: the only values allowed, or C{None}.
    @ivar minimum: the smallest number allowed (C{int}/C{float} only), or
        C{None}.
    @ivar secret: never show the value (in errors or C{repr}).
    """

    name: str
    type: type = str
    default: Any = REQUIRED
    help: str = ""
    choices: Optional[Tuple[Any, ...]] = attrs.field(
        default=None, converter=lambda c: None if c is None else tuple(c))
    minimum: Optional[float] = None
    secret: bool = False

    def __attrs_post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.isidentifier()):
            raise TypeError(f"option name must be an identifier, got {self.name!r}")
        if self.type not in _TYPES:
            raise TypeError(f"option {self.name!r}: type must be one of str, int, float, "
                            f"bool, list; got {self.type!r}")

    @property
    def required(self) -> bool:
        """
        C{True} when the option has no default.
        """
        return self.default is REQUIRED

    def expected(self) -> str:
        """
        @return: a phrase saying what a valid value is, for error messages.
        """
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        phrase = {
            str: "a non-empty string",
            int: "an integer",
            float: "a number",
            bool: "true or false",
            list: "a list of strings",
        }[self.type]
        if self.minimum is not None:
            phrase += f" >= {self.minimum:g}"
        if self.default is None:
            phrase += " or null"
        return phrase

    def check(self, value: Any) -> Any:
        """
        @param value: the value read from YAML.
        @return: the value to keep (C{float} for C{float} options, a
            C{tuple} for C{list} options).
        @raise OptionValueError: if the value does not fit; the message
            says what was expected.
        """
        if value is None and self.default is None:
            return None
        checked = self._convert(value)
        if checked is _INVALID:
            raise OptionValueError(self.expected())
        if self.choices is not None and checked not in self.choices:
            raise OptionValueError(self.expected())
        if self.minimum is not None and checked < self.minimum:
            raise OptionValueError(self.expected())
        return checked

    def _convert(self, value: Any) -> Any:
        if self.type is bool:
            return value if isinstance(value, bool) else _INVALID
        if isinstance(value, bool):
            return _INVALID
        if self.type is int:
            return value if isinstance(value, int) else _INVALID
        if self.type is float:
            if isinstance(value, (int, float)) and math.isfinite(value):
                return float(value)
            return _INVALID
        if self.type is list:
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                return tuple(value)
            return _INVALID
        return value if isinstance(value, str) and value.strip() else _INVALID


_INVALID = object()


@attrs.frozen(init=False)
class DriverOpt(Opt):
    """
    The option that chooses a driver, as Nova's C{volume_driver}: by a
    short alias registered as an entry point in L{group} (C{file}), or by
    dotted path (C{mypackage.drivers.FileDriver}). Its value is loaded with
    L{novasvc.config.loader.load_driver} and must provide L{interface}; the
    driver's own section (if it declares options) is validated too. With a
    L{group}, the sections of the group's other installed drivers may stay
    in the file: they are validated and otherwise ignored, so that
    switching drivers is one edit.

    @ivar interface: the zope interface the driver must provide.
    @ivar group: the entry point group naming the drivers of L{interface}
        (C{str}, e.g. C{"novasvc.volume.drivers"}), or C{None}: dotted paths
        only.
    """

    interface: Any = None
    group: Optional[str] = None

    def __init__(self, name: str, interface: Any, default: Any = REQUIRED,
                 help: str = "", group: Optional[str] = None) -> None:
        """
        @param name: the key in the section (C{str}), e.g. C{"driver"}.
        @param interface: the zope interface the driver must provide.
        @param default: the alias or dotted path used when the file gives
            none; C{None} for "no driver"; L{REQUIRED} makes the key
            mandatory.
        @param help: one sentence for humans.
        @param group: the entry point group of the interface's drivers, as
            a package's C{setup.py} or C{pyproject.toml} registers them
            (C{[project.entry-points."inventory.stock_drivers"]}).
        @raise TypeError: if C{interface} is not a zope interface.
        """
        if not isinstance(interface, InterfaceClass):
            raise TypeError(f"option {name!r}: the interface must be a zope Interface, "
                            f"got {interface!r}")
        if group is not None and not (isinstance(group, str) and group.strip()):
            raise TypeError(f"option {name!r}: the entry point group must be a non-empty "
                            f"string, got {group!r}")
        self.__attrs_init__(name=name, type=str, default=default, help=help,
                            interface=interface, group=group)

    def expected(self) -> str:
        if self.group:
            return (f"a driver name of entry point group {self.group!r} or the dotted path "
                    "of a driver such as mypackage.drivers.FileDriver")
        return "the dotted path of a driver such as mypackage.drivers.FileDriver"

    def check(self, value: Any) -> Any:
        if not is_dotted_path(value):
            raise OptionValueError(self.expected())
        return value


class Section(Mapping):
    """
    The validated, read-only values of one section: a mapping, whose keys
    are also attributes (C{section.driver} is C{section["driver"]}).
    Secret options show as C{***} in C{repr}.
    """

    __slots__ = ("_name", "_values", "_secret")

    def __init__(self, name: str, values: Mapping[str, Any], secret: Sequence[str] = ()) -> None:
        """
        @param name: the section's name, e.g. C{"volume"}.
        @param values: option name -> value.
        @param secret: names whose value C{repr} hides.
        """
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_secret", frozenset(secret))

    @property
    def name(self) -> str:
        """
        The section's name (C{str}).
        """
        return self._name

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"section {self._name!r} has no option {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"section {self._name!r} is read-only")

    def __hash__(self) -> int:
        return hash((self._name, tuple(sorted(self._values.items()))))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Section):
            return NotImplemented
        return self._name == other._name and self._values == other._values

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={'***' if key in self._secret else repr(value)}"
                          for key, value in self._values.items())
        return f"Section({self._name!r}, {shown})"


def declared_options(component: Any, default_section: Optional[str] = None
                     ) -> Tuple[Optional[str], Tuple[Opt, ...]]:
    """
    Read what a component declares.

    @param component: a manager or driver: a class, a module or an instance.
        It declares C{options} (a sequence of L{Opt}) and C{config_section}
        (C{str}).
    @param default_section: the section name when the component declares
        options but no C{config_section} (a manager's topic).
    @return: (section name, options); (C{None}, C{()}) when it declares none.
    @raise TypeError: if C{options} is not a sequence of L{Opt}, has a name
        twice, or there is no section name for it.
    """
    options = getattr(component, "options", ())
    if not options:
        return None, ()
    if (isinstance(options, (str, bytes, Mapping)) or not isinstance(options, Sequence)
            or not all(isinstance(opt, Opt) for opt in options)):
        raise TypeError(f"{_describe(component)}: 'options' must be a sequence of "
                        f"novasvc.config.options.Opt, got {type(options).__name__}")
    names = [opt.name for opt in options]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise TypeError(f"{_describe(component)}: option {twice[0]!r} is declared twice")
    section = getattr(component, "config_section", None) or default_section
    if not (isinstance(section, str) and section.isidentifier()):
        raise TypeError(f"{_describe(component)}: declares options but no "
                        "'config_section' (an identifier such as 'volume')")
    return section, tuple(options)


def build_section(name: str, options: Sequence[Opt], values: Mapping[str, Any],
                  where: Callable[[str], str], suggest: Callable[[str, Any], str]) -> Section:
    """
    Validate the YAML values of one section against its options.

    @param name: the section name.
    @param options: its L{Opt}s.
    @param values: what the file gives (key -> YAML value).
    @param where: key -> C{"file, line N: section.key"} for messages.
    @param suggest: (key, known keys) -> a "did you mean" phrase.
    @return: the L{Section}, defaults filled in.
    @raise OptionError: naming the place, the key and what was expected.
    """
    by_name = {opt.name: opt for opt in options}
    result: Dict[str, Any] = {}
    for key, value in values.items():
        opt = by_name.get(key) if isinstance(key, str) else None
        if opt is None:
            raise OptionError(f"{where(str(key))}: unknown key{suggest(str(key), by_name)}")
        try:
            result[key] = opt.check(value)
        except OptionValueError as e:
            shown = "a value that is not one" if opt.secret else show_value(value)
            raise OptionError(f"{where(key)}: expected {e.args[0]}, got {shown}") from None
    for opt in options:
        if opt.name not in result:
            if opt.required:
                help_text = f" ({opt.help})" if opt.help else ""
                raise OptionError(f"{where(opt.name)}: required, and not given{help_text}")
            result[opt.name] = opt.default
    ordered = {opt.name: result[opt.name] for opt in options}
    return Section(name, ordered, [opt.name for opt in options if opt.secret])


class OptionError(ValueError):
    """
    A section's values were refused; the message names the place and key.
    """


def _describe(component: Any) -> str:
    name = getattr(component, "__qualname__", None) or getattr(component, "__name__", None)
    if name is None:
        name = type(component).__qualname__ + " instance"
    return name
