# -*- test-case-name: tests.test_cli_drivers -*-
"""
C{novasvc-manage drivers}: the drivers each L{novasvc.config.options.DriverOpt} of
the configured managers may choose, by alias (the entry points of its
group) or by dotted path, and which one the configuration chooses.
"""

import argparse
from typing import IO, Any, List, Optional, Sequence, Tuple

from novasvc.cli._table import format_table
from novasvc.config import Config, load_config
from novasvc.config.loader import driver_aliases, load_object, resolve_driver
from novasvc.config.options import DriverOpt, declared_options
from novasvc.exceptions import ConfigError, LoadError

__all__ = ["driver_rows", "list_drivers", "HEADERS"]

#: The columns of the table.
HEADERS = ("Option", "Name", "Driver", "Section", "Chosen")


def list_drivers(args: argparse.Namespace, out: IO[str]) -> None:
    """
    C{novasvc-manage drivers}: print the table of L{driver_rows}.

    @param args: C{config}, C{database_connection}, C{environ} (for the
        file's C{${NAME}} references) and C{manager} (a list of dotted
        paths).
    @param out: where the table goes.
    @raise ConfigError: see L{driver_rows}; also for a bad configuration
        file.
    """
    settings = load_config(args.config, {"database_connection": args.database_connection},
                           environ=args.environ)
    out.write(format_table(HEADERS, driver_rows(settings, args.manager)))


def driver_rows(settings: Config, managers: Sequence[str]
                ) -> List[Tuple[str, Optional[str], str, Optional[str], str]]:
    """
    @param settings: the loaded configuration.
    @param managers: dotted paths of managers; empty: the file's
        C{<topic>_manager} keys.
    @return: one row per driver an option may choose: C{section.option},
        its alias (or C{None} for a dotted path that is no alias), the
        driver's path, the section it declares (or C{None}) and C{"yes"}
        for the one the configuration chooses.
    @raise ConfigError: if no manager is named, a manager cannot be
        imported, or the configuration of its section is refused.
    """
    paths = list(managers) or [path for _, path in settings.managers]
    if not paths:
        raise ConfigError("no manager: give --manager DOTTED.PATH or a configuration file "
                          "with a <topic>_manager key")
    rows = []
    for path in paths:
        try:
            found = load_object(path)
        except LoadError as e:
            raise ConfigError(str(e)) from None
        topic = getattr(found, "topic", None)
        section, options = declared_options(found, topic)
        if section is None:
            continue
        bound = settings.bind([found], default_section=topic).section(section)
        for opt in options:
            if isinstance(opt, DriverOpt):
                rows.extend(_rows(f"{section}.{opt.name}", opt, bound[opt.name]))
    return rows


def _rows(option: str, opt: DriverOpt, chosen: Optional[str]) -> List[Any]:
    aliases = driver_aliases(opt.group)
    rows = []
    for alias, path in aliases.items():
        rows.append((option, alias, path, _section_of(path), "yes" if alias == chosen else ""))
    if chosen is not None and chosen not in aliases:
        path = resolve_driver(chosen, opt.group)
        rows.append((option, None, path, _section_of(path), "yes"))
    return rows


def _section_of(path: str) -> Optional[str]:
    try:
        return declared_options(load_object(path))[0]
    except Exception:
        return None
