# -*- test-case-name: tests.test_api_request_id -*-
"""
The request id filter: a client's C{X-Request-Id} that looks safe is kept,
anything else is replaced by a new C{req-<uuid4>} (oslo.context's form). The
id is echoed in the response's C{X-Request-Id}, kept in the request's
L{novasvc.api.context.RequestInfo} (so it reaches the RPC request context
and the access log).
"""

import re
from typing import Union

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from novasvc.api.context import APIContext, request_info
from novasvc.api.filter import FilterResource
from novasvc.context import generate_request_id

__all__ = ["SAFE_REQUEST_ID", "request_id_filter"]

#: A client's request id kept as it is: 1 to 128 letters, digits and
#: C{. _ : -} (so C{req-<uuid>} and most tracing ids pass; nothing that
#: could break a log line or a header).
SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class _RequestId(FilterResource):
    def filter(self, request: IRequest) -> Union[bytes, int]:
        given = request.getHeader(b"x-request-id")
        info = request_info(request)
        if given is not None and SAFE_REQUEST_ID.fullmatch(given):
            info.request_id = given.decode("ascii")
        else:
            info.request_id = generate_request_id()
        request.setHeader(b"X-Request-Id", info.request_id.encode("ascii"))
        return self.pass_on(request)


def request_id_filter(resource: IResource, context: APIContext) -> IResource:
    """
    The filter (see L{novasvc.api.filter}).

    @return: C{resource} behind the request id check.
    """
    return _RequestId(resource)
