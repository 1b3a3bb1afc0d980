"""
The C{twistd novasvc} plugin: all the work is in L{novasvc.tap}.
"""

from twisted.application.service import ServiceMaker

novasvc = ServiceMaker(
    "novasvc",
    "novasvc.tap",
    "Run a Nova-style service: one Manager behind RPC, periodic tasks and a services table.",
    "novasvc",
)
