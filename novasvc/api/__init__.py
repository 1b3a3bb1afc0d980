"""The HTTP API service: the gateway to RPC and the status page, mounted by a Klein app."""
