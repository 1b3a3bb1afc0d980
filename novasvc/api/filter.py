# -*- test-case-name: tests.test_api_filter -*-
"""
L{FilterResource}: the base of a filter, paste-deploy's middleware idea
without paste.

A filter is a callable C{filter(resource, context) -> IResource} named by
dotted path in C{api.filters}; the chain is built in order, the first filter
outermost (L{novasvc.api.site.build_site}). A filter usually returns a
L{FilterResource} subclass whose L{FilterResource.filter} looks at the
request, then answers it itself or passes it on::

    class _Deny(FilterResource):
        def filter(self, request):
            if request.getHeader(b"x-deny"):
                return render_error(request, 403, "denied")
            return self.pass_on(request)

    def deny_filter(resource, context):
        return _Deny(resource)
"""

from typing import Union

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource, getChildForRequest

__all__ = ["FilterResource"]


class FilterResource(Resource):
    """
    A resource standing in front of another: every request reaches
    L{filter} first, whatever its path.

    @ivar wrapped: the resource behind (the application, or the next filter).
    """

    isLeaf = True

    def __init__(self, wrapped: IResource) -> None:
        Resource.__init__(self)
        self.wrapped = wrapped

    def render(self, request: IRequest) -> Union[bytes, int]:
        return self.filter(request)

    def filter(self, request: IRequest) -> Union[bytes, int]:
        """
        Handle C{request}; override it. This one passes it on.

        @return: the body (C{bytes}) or C{NOT_DONE_YET}, as C{render}.
        """
        return self.pass_on(request)

    def pass_on(self, request: IRequest) -> Union[bytes, int]:
        """
        Hand C{request} to the wrapped resource (found by the usual
        traversal of its children from the request's path).

        @return: what the wrapped resource's C{render} returns.
        """
        return getChildForRequest(self.wrapped, request).render(request)
