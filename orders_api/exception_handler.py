"""The API's error responses: {"message": ..., "errors": {field: message}} for every failure."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from orders_api.exceptions import InvalidRequest, MissingApiKey, flatten_errors
from pipeline.config import MissingSetting

log = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, reshaped: every error body has a message, field errors under `errors`."""
    if isinstance(exc, MissingSetting | BotoCoreError | ClientError):
        # The order store is not configured or not answering: the client may retry.
        log.exception("order store unavailable")
        response = Response(
            {"message": "Service Unavailable: the order store cannot be reached"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = "1"
        return response
    if isinstance(exc, exceptions.NotAuthenticated):
        exc = MissingApiKey()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handling logs it
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
