"""The API's error responses: {"message": ..., "errors": {field: message}} for every failure."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as AwsConnectionError
from django.db import DatabaseError, InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from orders_api.exceptions import InvalidRequest, MissingApiKey, flatten_errors
from orders_api.middleware import INTERNAL_ERROR
from pipeline.config import MissingSetting

log = logging.getLogger(__name__)

ORDER_STORE_UNAVAILABLE = "Service Unavailable: the order store cannot be reached"
KEY_STORE_UNAVAILABLE = "Service Unavailable: the API key store cannot be reached"
RETRY_AFTER_SECONDS = "1"

# AWS error codes after which the same request may well succeed a moment later: throttling,
# the service's own faults, a transaction in flight on the item. Any other code
# (ValidationException, AccessDeniedException, ResourceNotFoundException,
# UnrecognizedClientException, ...) says the request or the deployment is wrong: a retry
# fails the same way, so those are a 500 without Retry-After.
RETRYABLE_AWS_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def aws_error_code(exc: BotoCoreError | ClientError) -> str:
    """The AWS error code of a ClientError, the exception's class name otherwise."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__


def aws_error_is_retryable(exc: BotoCoreError | ClientError) -> bool:
    """Whether sending the same request again later can succeed (so Retry-After helps)."""
    if isinstance(exc, ClientError):
        http_status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return aws_error_code(exc) in RETRYABLE_AWS_CODES or int(http_status) >= 500
    # No answer came back: the endpoint refused, dropped or timed out the connection. Other
    # BotoCoreErrors (no credentials, no region, bad parameters) are the deployment's fault.
    return isinstance(exc, AwsConnectionError | HTTPClientError)


def database_is_unreachable(exc: DatabaseError) -> bool:
    """Whether the database error is the server being out of reach (so a retry can succeed)."""
    if isinstance(exc, InterfaceError):
        return True  # the connection was closed under us
    if not isinstance(exc, OperationalError):
        return False
    # psycopg's SQLSTATE: none when the connection was refused, dropped or timed out; 08 for
    # connection failures, 53 for a server out of resources (too many connections), 57P for a
    # server shutting down or starting up. Others (a wrong password or database name) are
    # configuration: retrying cannot help.
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or str(sqlstate).startswith(("08", "53", "57P"))


def _unavailable(message: str) -> Response:
    response = Response({"message": message}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def _internal_error() -> Response:
    # No Retry-After: the same request would fail the same way.
    return Response({"message": INTERNAL_ERROR}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's handler, reshaped: every error body has a message, field errors under `errors`.

    Failures of the stores are 503 with Retry-After when a retry can succeed (throttled, down,
    timed out) and 500 without it when it cannot; any other unexpected exception is a 500 too.
    Every 5xx is logged with what caused it, and answered as JSON.
    """
    if isinstance(exc, BotoCoreError | ClientError):
        code = aws_error_code(exc)
        if aws_error_is_retryable(exc):
            log.warning("order store unavailable", exc_info=exc, extra={"aws_error_code": code})
            return _unavailable(ORDER_STORE_UNAVAILABLE)
        log.error("order store refused the request", exc_info=exc, extra={"aws_error_code": code})
        return _internal_error()
    if isinstance(exc, MissingSetting):
        log.error("order store not configured", exc_info=exc)
        return _internal_error()
    if isinstance(exc, DatabaseError) and database_is_unreachable(exc):
        log.warning("API key store unavailable", exc_info=exc)
        return _unavailable(KEY_STORE_UNAVAILABLE)
    if isinstance(exc, exceptions.NotAuthenticated):
        exc = MissingApiKey()
    response = drf_exception_handler(exc, context)
    if response is None:
        # A bug or an unexpected failure: DRF would re-raise it for Django's HTML 500 page.
        request = context.get("request")
        where = {"path": getattr(request, "path", None), "method": getattr(request, "method", None)}
        log.error("unhandled exception in the order API", exc_info=exc, extra=where)
        set_rollback()
        return _internal_error()
    body: dict[str, Any]
    if isinstance(exc, InvalidRequest):
        body = {"message": str(exc.detail), "errors": exc.errors}
    elif isinstance(exc, exceptions.ValidationError):
        body = {"message": "Invalid request", "errors": flatten_errors(exc.detail)}
    elif isinstance(exc, exceptions.ParseError):
        body = {"message": str(exc.detail), "errors": {"body": str(exc.detail)}}
    elif isinstance(exc, exceptions.APIException):
        body = {"message": str(exc.detail)}
    else:  # Http404 and PermissionDenied from Django
        body = {"message": str(response.data.get("detail", "Error"))}
    response.data = body
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        response["Retry-After"] = retry_after
    return response
