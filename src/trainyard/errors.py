"""Domain errors. The API maps each class to one HTTP status in one place (api/errors.py)."""

from __future__ import annotations


class TrainyardError(Exception):
    """Base class; `code` is a stable machine-readable name, the message is for people."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(TrainyardError):
    code = "not_found"


class InvalidInput(TrainyardError):
    """The request is well-formed but its content is unacceptable (HTTP 422)."""

    code = "invalid_input"


class BadRequest(TrainyardError):
    """The request cannot be read at all: wrong content type, undecodable body (HTTP 400)."""

    code = "bad_request"


class PayloadTooLarge(TrainyardError):
    code = "payload_too_large"


class Conflict(TrainyardError):
    """The record is in a state that does not allow the operation (HTTP 409)."""

    code = "conflict"


class Unauthorized(TrainyardError):
    code = "unauthorized"


class Unavailable(TrainyardError):
    """A part the request needs is not installed or not reachable (HTTP 503)."""

    code = "unavailable"
