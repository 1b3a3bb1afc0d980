"""
The process: what C{twistd novasvc} and C{twistd novasvc-api} run.
L{novasvc.process.tap} and L{novasvc.process.api_tap} build the program from
the command line and the configuration (a service with the API attached when
C{api.enabled}, the standalone API, or a supervisor of worker processes),
L{novasvc.process.launcher} turns signals into stops and start-up failures
into an exit status, L{novasvc.process.log} sets the log level and format,
L{novasvc.process.systemd} tells systemd, and L{novasvc.process.workers} runs
N copies of a service under one parent.

Layer: the top, beside the command-line tools and the examples; it may import
every layer below. Only L{novasvc.process.tap.makeService} (and the API's)
take Twisted's global reactor.
"""
