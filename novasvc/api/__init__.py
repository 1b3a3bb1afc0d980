"""
The HTTP API: a twisted.web resource tree, as Nova's C{WSGIService} (see
L{novasvc.api.site.build_site} and L{novasvc.api.service.APIService}).
"""
