"""
The HTTP API: a twisted.web resource tree, as Nova's C{WSGIService} (see
L{novasvc.api.site.build_site} and L{novasvc.api.service.APIService}).

Layer: above the core (it reads the services table through the service store and
calls services with the RPC client); below the process layer, which serves it.
It never imports the process layer (L{novasvc.process}) or the test kit.
"""
