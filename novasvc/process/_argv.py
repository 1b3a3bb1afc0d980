# -*- test-case-name: tests.test_process_argv -*-
"""
What the command lines of C{twistd novasvc} (L{novasvc.process.tap}) and C{twistd
novasvc-api} (L{novasvc.process.api_tap}) share: L{ArgvOptions}, which keep the
arguments they parsed for the worker processes, and L{count}, the parser
of an option taking an integer >= 1 (C{--workers}, C{--worker-index}).
"""

import sys
from typing import Callable, List, Optional

from twisted.python import usage

__all__ = ["ArgvOptions", "count"]


def count(option: str) -> Callable[[str], int]:
    """
    @param option: the option's name, for the message.
    @return: the parser of an option taking an integer >= 1, which raises
        C{ValueError} (shown by L{usage.Options}) otherwise.
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"--{option}: expected an integer >= 1, got {text[:40]!r}")
        return value

    return parse


class ArgvOptions(usage.Options):
    """
    C{usage.Options} that keep the arguments they parsed, to give them again
    to the worker processes a supervising parent starts.
    """

    #: The arguments given to L{parseOptions}, which workers are given again.
    argv: List[str] = []

    def parseOptions(self, options: Optional[List[str]] = None) -> None:
        """
        Parse C{options} (default: C{sys.argv[1:]}) and keep them in L{argv}.
        """
        self.argv = list(sys.argv[1:] if options is None else options)
        usage.Options.parseOptions(self, options)
