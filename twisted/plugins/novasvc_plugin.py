"""
The C{twistd novasvc} and C{twistd novasvc-api} plugins: all the work is in
L{novasvc.process.tap} and L{novasvc.process.api_tap}.
"""

from twisted.application.service import ServiceMaker

novasvc = ServiceMaker(
    "novasvc",
    "novasvc.process.tap",
    "Run a Nova-style service: one Manager behind RPC, periodic tasks and a services table.",
    "novasvc",
)

novasvc_api = ServiceMaker(
    "novasvc-api",
    "novasvc.process.api_tap",
    "Serve the novasvc HTTP API (services table, health, metrics, RPC gateway) on its own.",
    "novasvc-api",
)
