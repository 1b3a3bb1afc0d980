# -*- test-case-name: tests.test_config -*-
"""
L{load_config}: one validated, immutable L{Config} from defaults,
overridden by one YAML file, overridden by the command line.

Keys and defaults follow Nova and oslo.messaging (see C{etc/novasvc.yaml}, where
every key is documented). A bad file, an unknown key or a value of the wrong
type is refused with L{novasvc.exceptions.ConfigError} naming the file, the
line and the key, and what was expected.

String scalars may refer to environment variables, as nameko's YAML config
does: C{${NAME}} is replaced by the variable's value and C{${NAME:default}} by
the value, or C{default} when the variable is unset (the default ends at the
first C{\}}); C{$${} writes a literal C{${}. Substitution happens before the
YAML type is decided, so an unquoted C{${INTERVAL:10}} is the number 10 and
C{${FLAG:true}} the boolean C{true}, while a quoted C{"${PORT}"} stays a
string. A variable that is unset and has no default is an error.
"""

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from novasvc._text import show_value
from novasvc.config._checks import Bad
from novasvc.config._checks import suggest as _suggest
from novasvc.config._config import Config, RawSection, managers_from
from novasvc.config._keys import (
    CHECKS,
    DATABASE_CHECKS,
    MANAGER_SUFFIX,
    MAPPINGS,
    NOTIFICATIONS_CHECKS,
    SECRET,
    TRACING_CHECKS,
)
from novasvc.config._sections import DatabaseConfig, NotificationsConfig, TracingConfig
from novasvc.config.api import parse_api_section
from novasvc.config.loader import is_dotted_path
from novasvc.exceptions import ConfigError

__all__ = ["load_config"]


def load_config(path: Optional[str], overrides: Mapping[str, Any] = {}, *,
                environ: Optional[Mapping[str, str]] = None,
                defaults: Mapping[str, Tuple[Any, str]] = {}) -> Config:
    """
    Build the configuration: L{Config}'s defaults (or the caller's
    C{defaults}), overridden by the YAML file at C{path}, overridden by
    C{overrides}.

    The file is a mapping whose keys are L{Config}'s field names (except
    C{managers}), plus a C{database:} mapping with C{connection},
    C{thread_pool_size} and C{auto_sync}, plus any number of
    C{<topic>_manager: dotted.path} keys (collected into
    L{Config.managers}). Any other top-level mapping is
    the section of a manager or driver: it is kept aside for
    L{Config.bind}, which validates it once the components are known. An
    empty file is an empty mapping.

    @param path: the YAML file, or C{None} for defaults and overrides only.
    @param overrides: command-line values keyed by L{Config} field name, with
        C{database_connection} and C{database_thread_pool_size} for the
        C{database:} section; a value of C{None} means "not given".
    @param environ: the environment for C{${NAME}} substitution (default:
        C{os.environ}).
    @param defaults: values that take the place of built-in defaults, so
        that the file and C{overrides} beat them, keyed as C{overrides}; each
        is a C{(value, source)} pair where C{source} names the value in a
        refusal (e.g. C{"environment variable NOVASVC_TRANSPORT_URL"}); a
        value of C{None} means "not given", and a value the file or
        C{overrides} beat is not checked.
    @return: the validated L{Config}; durations are C{float} seconds and
        C{allowed_remote_exmods} is a C{tuple}.
    @raise ConfigError: the file is missing or unreadable, is not valid YAML,
        is not a mapping, has an unknown key, or has a value of the wrong type
        or out of range; likewise for an override. The message names the file
        (and line) or the command-line option, the key and what was expected,
        and never shows a password.
    """
    values: Dict[str, Any] = {}
    database: Dict[str, Any] = {}
    tracing: Dict[str, Any] = {}
    notifications: Dict[str, Any] = {}
    managers: Dict[str, str] = {}
    unbound: List[RawSection] = []
    if path is not None:
        from novasvc.config._yaml import read_yaml  # PyYAML: only for a --config file

        data, lines = read_yaml(path, os.environ if environ is None else environ)
        _apply_file(path, data, lines, values, database, managers, unbound, tracing, notifications)
    # A default the file or an override beats is not even checked.
    given = {*values, *("database_" + key for key in database),
             *(key for key, value in overrides.items() if value is not None)}
    _apply_overrides({key: value for key, (value, _) in defaults.items() if key not in given},
                     values, database, lambda key: defaults[key][1])
    _apply_overrides(overrides, values, database)
    if values.get("rabbit_quorum_queue"):
        values["durable_queues"] = True  # quorum queues are durable (oslo forces it too)
    return Config(database=DatabaseConfig(**database), tracing=TracingConfig(**tracing),
                  notifications=NotificationsConfig(**notifications),
                  managers=managers_from(managers), unbound=tuple(unbound), **values)


# -- applying the file and the overrides ------------------------------------


def _apply_file(path: str, data: Any, lines: Dict[str, int], values: Dict[str, Any],
                database: Dict[str, Any], managers: Dict[str, str],
                unbound: List[RawSection], tracing: Dict[str, Any], notifications: Dict[str, Any]) -> None:
    def where(key: str) -> str:
        line = lines.get(key)
        return f"{path}, line {line}: {key}" if line else f"{path}: {key}"

    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings (key: value) at the "
                          f"top level, got {_show('', data)}")
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where(str(key))}: keys must be strings, got {_show('', key)}")
        if key in CHECKS:
            values[key] = _check(where(key), key, CHECKS[key], value)
        elif key == "database":
            _apply_mapping(key, value, DATABASE_CHECKS, database, where)
        elif key == "tracing":
            _apply_mapping(key, value, TRACING_CHECKS, tracing, where)
        elif key == "notifications":
            _apply_mapping(key, value, NOTIFICATIONS_CHECKS, notifications, where)
        elif key == "api":
            values[key] = parse_api_section(value, where)
        elif key.endswith(MANAGER_SUFFIX) and len(key) > len(MANAGER_SUFFIX):
            if not is_dotted_path(value):
                raise ConfigError(f"{where(key)}: expected the dotted path of a manager class "
                                  f"such as mypackage.volume.VolumeManager, got {_show(key, value)}")
            managers[key[:-len(MANAGER_SUFFIX)]] = value
        elif key == "managers":
            raise ConfigError(f"{where(key)}: not a file key; write one "
                              "'<topic>_manager: dotted.path' key per topic instead")
        elif isinstance(value, dict) or (value is None and key.isidentifier()):
            # A manager's or driver's section, validated by Config.bind().
            prefix = key + "."
            section_lines = [("", lines.get(key, 0))] + [
                (name[len(prefix):], line) for name, line in lines.items()
                if name.startswith(prefix)]
            unbound.append(RawSection(key, tuple((value or {}).items()), path,
                                       tuple(section_lines)))
        else:
            raise ConfigError(f"{where(key)}: unknown key"
                              f"{_suggest(key, [*CHECKS, *MAPPINGS])}")


def _apply_mapping(key: str, value: Any, checks: Mapping[str, Callable[[Any], Any]], into: Dict[str, Any],
                   where: Callable[[str], str]) -> None:
    """
    Check a built-in mapping of the file (such as C{tracing:}) key by key
    into C{into}; a C{null} mapping (every key commented out) is empty.
    """
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise ConfigError(f"{where(key)}: expected a mapping with keys {', '.join(checks)}, "
                          f"got {_show(key, value)}")
    for sub, subvalue in value.items():
        name = f"{key}.{sub}"
        if sub not in checks:
            raise ConfigError(f"{where(name)}: unknown key{_suggest(str(sub), checks)}")
        into[sub] = _check(where(name), name, checks[sub], subvalue)


def _option_name(key: str) -> str:
    return "command line option --" + key.replace("_", "-")


def _apply_overrides(overrides: Mapping[str, Any], values: Dict[str, Any],
                     database: Dict[str, Any], source: Callable[[str], str] = _option_name) -> None:
    for key, value in overrides.items():
        if value is None:
            continue
        where = source(key)
        if key in CHECKS:
            values[key] = _check(where, key, CHECKS[key], value)
        elif key.startswith("database_") and key[len("database_"):] in DATABASE_CHECKS:
            sub = key[len("database_"):]
            database[sub] = _check(where, "database." + sub, DATABASE_CHECKS[sub], value)
        else:
            raise ConfigError(f"{where}: unknown setting {key!r}")


def _check(where: str, key: str, check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except Bad as e:
        expected = e.args[0]
        if key == "transport_url" and isinstance(value, str) and not expected.startswith("a "):
            raise ConfigError(f"{where}: {expected}") from None
        raise ConfigError(f"{where}: expected {expected}, got {_show(key, value)}") from None


def _show(key: str, value: Any) -> str:
    """
    @return: a short description of a refused value; secrets are described
        by type only.
    """
    if isinstance(value, str) and key in SECRET:
        return "a string that is not one"
    return show_value(value)
