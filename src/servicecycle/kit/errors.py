"""Errors a service raises; the web layer turns each into one response shape."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error a caller may show to the user."""

    status_code = 400
    code = "bad_request"
    unnamed: str | None = None  # the message before ``at_item`` named the batch's item

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra or {}

    def at_item(self, index: int, what: str) -> ServiceError:
        """This error, said of a batch's item ``index`` (``what`` names it): the batch
        services refuse the whole batch with it."""
        self.unnamed = self.message
        self.message = f"Item {index} ({what}): {self.message}. Nothing was written."
        self.extra = {**self.extra, "item": index}
        return self


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Unauthenticated(ServiceError):
    status_code = 401
    code = "unauthenticated"


class LoginRequired(Unauthenticated):
    """A page needs a signed-in user; browsers are sent to the login page."""

    code = "login_required"


class PermissionDenied(ServiceError):
    status_code = 403
    code = "forbidden"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class PreconditionFailed(ServiceError):
    """The client's version (If-Match) is not the current one: nothing was changed."""

    status_code = 412
    code = "version_mismatch"


class PreconditionRequired(ServiceError):
    status_code = 428
    code = "precondition_required"


class TooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class ValidationFailed(ServiceError):
    status_code = 422
    code = "validation_error"


class TooManyRequests(ServiceError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, extra={"retry_after": retry_after})
        self.retry_after = retry_after
