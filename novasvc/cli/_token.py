# -*- test-case-name: tests.test_cli_token -*-
"""
C{novasvc-manage token new}: a new random API bearer token, and the
C{api.tokens} entry that accepts it (its SHA-256, never the token itself).
"""

import argparse
import hashlib
import secrets
from typing import IO

import yaml

__all__ = ["token_new"]


def token_new(args: argparse.Namespace, out: IO[str]) -> None:
    """
    Print a new token once, then the configuration that accepts it.

    @param args: C{role} and C{name} (C{None}: C{token-<first 8 hex digits
        of its SHA-256>}).
    @param out: where both go.
    """
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode("ascii")).hexdigest()
    name = args.name if args.name is not None else f"token-{digest[:8]}"
    snippet = yaml.safe_dump({"api": {"tokens": [{"name": name, "role": args.role,
                                                  "sha256": digest}]}},
                             sort_keys=False, default_flow_style=False)
    print(f"Bearer token (shown once; the configuration keeps only its SHA-256):\n{token}\n",
          file=out)
    print("Add to the configuration file (merge into an existing api.tokens list):", file=out)
    out.write(snippet)
