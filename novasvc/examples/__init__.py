"""
Runnable services the README and the tests use: L{novasvc.examples.echo} and
the volume service (L{novasvc.examples.volume}: a manager, drivers chosen by
configuration, versioned objects, a client-side rpcapi).

Layer: the top, as a user's project would be: they import the public API of
every layer and the test kit; nothing in novasvc imports them (twistd loads
them by dotted path).
"""
