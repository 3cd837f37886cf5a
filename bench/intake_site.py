"""The intake benchmark's comparison endpoints, served beside the real API by one gunicorn.

`/bench/minimal`: a DRF view with the API-key library's permission check and one PutItem,
nothing else (no limiter, validation, idempotency or metrics): what the real POST /submitorder
is measured against. `/bench/bare`: a plain Django view doing the same PutItem, no key check.
Only bench/settings.py mounts them; the portal never does.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.permissions import BaseHasAPIKey

from orders_api.models import ClientAPIKey
from pipeline import aws
from pipeline.config import ENV_ORDERS_TABLE


def _put_one() -> str:
    order_id = str(uuid.uuid4())
    aws.client("dynamodb").put_item(
        TableName=os.environ[ENV_ORDERS_TABLE],
        Item={
            "OrderId": {"S": order_id},
            "Status": {"S": "BENCH"},
            "OrderDate": {"S": "2026-01-01T00:00:00Z"},
            "CustomerName": {"S": "bench"},
        },
        ConditionExpression="attribute_not_exists(OrderId)",
    )
    return order_id


class LibraryKeyCheck(BaseHasAPIKey):
    """djangorestframework-api-key's own check against the portal's key model."""

    model = ClientAPIKey


class MinimalSubmit(APIView):
    """A key check and one conditional PutItem."""

    authentication_classes: list[Any] = []
    permission_classes = [LibraryKeyCheck]
    throttle_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        """Write the order; answer its id."""
        return Response({"OrderId": _put_one()})


@csrf_exempt
def bare_submit(request: HttpRequest) -> JsonResponse:
    """One conditional PutItem from a plain Django view."""
    return JsonResponse({"OrderId": _put_one()})


urlpatterns = [
    path("bench/minimal", MinimalSubmit.as_view()),
    path("bench/bare", bare_submit),
    path("", include("portal.urls")),
]
