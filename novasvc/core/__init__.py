"""
The service core, Nova's service model: L{novasvc.core.manager.Manager} (the
class a team writes), L{novasvc.core.service.Service} (store, record, RPC
consumers, notification listeners, periodic tasks and report_state, started
in that order and stopped in reverse), L{novasvc.core.servicegroup} (who is
up: report_state and C{is_up}), L{novasvc.core.lifecycle} (children that
start and stop in turn) and L{novasvc.core.service_status} (the versioned
C{service.*} notifications).

Layer: above the RPC layer, the notifications, the service store, the periodic
tasks, tracing and the configuration; below the API, the test kit and the
process layer, none of which it imports (C{twistd novasvc}'s tap attaches the
API to a service).
"""
