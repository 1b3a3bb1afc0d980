"""
The command-line tools: C{novasvc-rpc} (call, cast, notify and listen from a
shell) and C{novasvc-manage} (the services table, the database schema, drivers).

Layer: the top, beside the process layer (which it never imports): it may use
every layer below (core, RPC, notifications, the service store, configuration).
"""
