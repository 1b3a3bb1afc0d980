# -*- test-case-name: tests.test_config -*-
"""
Reading a configuration file for L{novasvc.config.load_config}: PyYAML's
safe loader, plus C{${NAME:default}} substitution from the environment and
a refusal of duplicate keys. A module of its own so that a service started
without C{--config} never imports PyYAML.
"""

import re
from typing import Any, Dict, Mapping, Tuple

import yaml

from novasvc.exceptions import ConfigError

__all__ = ["read_yaml"]

_ENV = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _EnvError(Exception):
    """
    An unusable C{${...}} reference: C{args} are (message, line number).
    """


class _Loader(yaml.SafeLoader):
    """
    PyYAML's safe loader, plus C{${NAME:default}} substitution in scalars and
    a refusal of duplicate keys (which PyYAML would silently collapse).
    """

    environ: Mapping[str, str] = {}

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
        event = self.peek_event()
        if "${" in event.value:
            event.value = _substitute(event.value, self.environ, event.start_mark.line + 1)
        return super().compose_scalar_node(anchor)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen: Dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r} "
                        f"(first given on line {seen[key_node.value]})", key_node.start_mark)
                seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


def _substitute(text: str, environ: Mapping[str, str], line: int) -> str:
    def replace(match: "re.Match[str]") -> str:
        if match.group(0) == "$${":
            return "${"
        reference = match.group(1)
        if reference is None:
            raise _EnvError("'${' without a closing '}'", line)
        name, colon, default = reference.partition(":")
        if not _ENV_NAME.fullmatch(name):
            raise _EnvError(f"{'${' + reference + '}'!r} is not ${{NAME}} or ${{NAME:default}}", line)
        if name in environ:
            return environ[name]
        if colon:
            return default
        raise _EnvError(f"environment variable {name!r} is not set and has no default "
                        f"(write ${{{name}:default}} to give one)", line)

    return _ENV.sub(replace, text)


def read_yaml(path: str, environ: Mapping[str, str]) -> Tuple[Any, Dict[str, int]]:
    """
    @return: the document, and the line number of each top-level key (and of
        each C{database.<key>}).
    @raise ConfigError: if the file cannot be read or parsed.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration file: "
                          f"{e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start})") from None
    loader = _Loader(text)
    loader.environ = environ
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except _EnvError as e:
        raise ConfigError(f"{path}, line {e.args[1]}: {e.args[0]}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        place = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{place}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    finally:
        loader.dispose()
    return data, _key_lines(node)


def _key_lines(node: Any) -> Dict[str, int]:
    lines: Dict[str, int] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            lines[key_node.value] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                for sub, subvalue in value_node.value:
                    if isinstance(sub, yaml.ScalarNode):
                        lines[f"{key_node.value}.{sub.value}"] = sub.start_mark.line + 1
                        _item_lines(f"{key_node.value}.{sub.value}", subvalue, lines)
    return lines


def _item_lines(key: str, node: Any, lines: Dict[str, int]) -> None:
    """
    Record the line of each item of a list of mappings (C{api.tokens[0]})
    and of each of their keys (C{api.tokens[0].role}).
    """
    if not isinstance(node, yaml.SequenceNode):
        return
    for index, item in enumerate(node.value):
        lines[f"{key}[{index}]"] = item.start_mark.line + 1
        if isinstance(item, yaml.MappingNode):
            for sub, _ in item.value:
                if isinstance(sub, yaml.ScalarNode):
                    lines[f"{key}[{index}].{sub.value}"] = sub.start_mark.line + 1
