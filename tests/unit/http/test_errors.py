"""The one mapping from error categories to status codes, and Docker's error body."""

from __future__ import annotations

import pytest

from dockyard import errdefs
from dockyard.http.errors import HTTPError, RequestTooLarge, error_body, status_for
from dockyard.http.request import error_response


@pytest.mark.parametrize("exc, status", [
    (errdefs.InvalidArgument("x"), 400), (errdefs.NotFound("x"), 404),
    (errdefs.Conflict("x"), 409), (errdefs.AlreadyExists("x"), 409),
    (errdefs.NotModified("x"), 304), (errdefs.Forbidden("x"), 403),
    (errdefs.Unavailable("x"), 503), (errdefs.System("x"), 500), (KeyError("x"), 500),
    (RequestTooLarge("x"), 413), (HTTPError(401, "auth"), 401),
])
def test_status_for(exc, status):
    assert status_for(exc) == status


def test_docker_error_body():
    assert error_body('No such container: "a"') == b'{"message":"No such container: \\"a\\""}\n'
    resp = error_response(errdefs.NotFound("No such image: busybox:latest"))
    assert (resp.status, resp.content_type) == (404, "application/json")
    assert resp.body == b'{"message":"No such image: busybox:latest"}\n'
    resp = error_response(HTTPError(401, "unauthorized", [("WWW-Authenticate", "Bearer")]))
    assert resp.headers == [("WWW-Authenticate", "Bearer")]
    assert error_response(RuntimeError()).body == b'{"message":"RuntimeError"}\n'
