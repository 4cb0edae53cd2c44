"""The application's error types: data that `http_edge` maps to one problem-details answer each.

Failures the customer must fix in their tenant are not errors here; they are checks in the
verification report.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class AppError(Exception):
    """Base of every error that reaches the HTTP edge as problem details."""

    status = 500
    problem = "internal"
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extensions(self) -> dict[str, object]:
        """Extra members of the problem-details body."""
        return {}

    def headers(self) -> dict[str, str]:
        return {}


class ValidationFailed(AppError):
    status = 400
    problem = "validation"
    title = "Request is not valid"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        first = errors[0] if errors else None
        super().__init__(
            detail or (f"{first.field} {first.message}" if first else "invalid request")
        )
        self.errors = errors

    def extensions(self) -> dict[str, object]:
        return {"errors": [{"field": e.field, "message": e.message} for e in self.errors]}


def invalid(field: str, message: str) -> ValidationFailed:
    """The 400 for one bad field."""
    return ValidationFailed([FieldError(field, message)])


class BadRequest(AppError):
    """A request that is not valid as a whole (malformed JSON, not an object)."""

    status = 400
    problem = "bad-request"
    title = "Request is not valid"


class Unauthorized(AppError):
    status = 401
    problem = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str, *, token_sent: bool = True) -> None:
        super().__init__(detail)
        self.token_sent = token_sent

    def headers(self) -> dict[str, str]:
        # RFC 6750 section 3.1: a request without a token gets the bare challenge; an error code
        # only when a token was sent and refused. The token itself is never echoed.
        if not self.token_sent:
            return {"WWW-Authenticate": "Bearer"}
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class NotFound(AppError):
    status = 404
    problem = "not-found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    problem = "conflict"
    title = "Conflict"

    def __init__(
        self, detail: str, *, account_id: str | None = None, key_id: str | None = None
    ) -> None:
        super().__init__(detail)
        self.account_id = account_id
        self.key_id = key_id  # a rotation in progress: its new key

    def extensions(self) -> dict[str, object]:
        named = {"accountId": self.account_id, "keyId": self.key_id}
        return {name: value for name, value in named.items() if value}


class PreconditionFailed(AppError):
    """`If-Match` named a version of the account that is no longer current."""

    status = 412
    problem = "precondition-failed"
    title = "The account changed"


class CursorExpired(AppError):
    """A change-feed cursor behind the oldest event kept: the reader missed events that
    retention removed and must start again from `oldestCursor`."""

    status = 410
    problem = "cursor-expired"
    title = "The cursor is older than the events kept"

    def __init__(self, oldest_cursor: str) -> None:
        super().__init__(
            "events after this cursor were removed by retention before they were read; start "
            "again from oldestCursor (the oldest event kept) and resynchronise what you missed"
        )
        self.oldest_cursor = oldest_cursor

    def extensions(self) -> dict[str, object]:
        return {"oldestCursor": self.oldest_cursor}


class PayloadTooLarge(AppError):
    status = 413
    problem = "payload-too-large"
    title = "Request body too large"


class UnsupportedMediaType(AppError):
    status = 415
    problem = "unsupported-media-type"
    title = "Unsupported media type"


class MethodNotAllowed(AppError):
    status = 405
    problem = "method-not-allowed"
    title = "Method not allowed"

    def __init__(self, detail: str, *, allow: tuple[str, ...]) -> None:
        super().__init__(detail)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)}


class DependencyUnavailable(AppError):
    """Key Vault, storage, a JWKS endpoint or another dependency did not answer usefully."""

    status = 503
    problem = "dependency-unavailable"
    title = "A dependency is unavailable"

    def __init__(self, dependency: str, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail or f"{dependency} is unavailable; try again shortly")
        self.dependency = dependency
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class AccountBusy(DependencyUnavailable):
    """Every try of a write lost its race to another writer (the store's VersionConflict)."""

    title = "The account is busy"

    def __init__(self) -> None:
        super().__init__(
            "account store",
            "the account is being changed by another request; try again",
            retry_after=1,
        )


class ConfigurationError(AppError):
    """The app's settings are missing or invalid: the operator must fix them."""

    status = 500
    problem = "configuration"
    title = "The app is not configured correctly"


@dataclass
class Problems:
    """Collects field errors so every bad field is named in one answer."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        self.errors.append(FieldError(name, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)
