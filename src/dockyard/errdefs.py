"""Error categories shared by every layer.

Code raises a category; exactly one place (the API's error mapping, or a CLI's exit-code
mapping) turns a category into a status. Nothing branches on message text.
"""


class DockyardError(Exception):
    """Base of every error category."""


class InvalidArgument(DockyardError):
    """The caller sent something malformed or out of range (HTTP 400)."""


class NotFound(DockyardError):
    """The named object does not exist (HTTP 404)."""


class Conflict(DockyardError):
    """The object is in a state that forbids the operation (HTTP 409)."""


class AlreadyExists(Conflict):
    """An object with that name or id exists already (HTTP 409)."""


class NotModified(DockyardError):
    """The operation would change nothing (HTTP 304)."""


class Unavailable(DockyardError):
    """A needed kernel feature or service is not available here (HTTP 503)."""


class Unsupported(DockyardError):
    """The daemon does not implement this for the object (HTTP 501)."""


class Forbidden(DockyardError):
    """The operation is not allowed (HTTP 403)."""


class Unauthorized(DockyardError):
    """Credentials are missing or were refused (HTTP 401), as a registry login or pull."""


class System(DockyardError):
    """A real internal fault: a system call or a file operation failed (HTTP 500)."""
