"""Domain errors that every package raises and the API turns into JSON responses."""

from __future__ import annotations


class HubError(Exception):
    """Base of the errors a caller can act on. `code` is stable; `message` is for people."""

    code = "error"
    status = 400

    def __init__(
        self, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}


class NotFound(HubError):
    code = "not_found"
    status = 404


class Conflict(HubError):
    code = "conflict"
    status = 409


class Invalid(HubError):
    code = "validation_error"
    status = 422


class Forbidden(HubError):
    code = "forbidden"
    status = 403


class Unauthorized(HubError):
    code = "unauthorized"
    status = 401


class TooLarge(HubError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(HubError):
    code = "unsupported_media_type"
    status = 415


class Unavailable(HubError):
    """The database (or another service a request needs) does not answer: try again."""

    code = "unavailable"
    status = 503


class AddressInUse(HubError):
    """A service's listening address is taken (another hub, another program)."""

    code = "address_in_use"
    status = 503


class TooManyRequests(HubError):
    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
