"""The order endpoints: translate the request, call one service or selector, answer in HTTP."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from orders_api import idempotency
from orders_api.envelope import envelope_fields
from orders_api.exceptions import InvalidRequest, flatten_errors
from orders_api.models import ClientAPIKey
from orders_api.selectors import BadCursor, order_for_client, orders_of_client
from orders_api.serializers import (
    ORDER_FIELDS,
    ErrorSerializer,
    OrderListQuerySerializer,
    OrderListSerializer,
    OrderSerializer,
    SubmitOrderRequestSerializer,
    SubmitOrderResponseSerializer,
    as_order_date,
)
from orders_api.services import client_order_submit
from pipeline.domain import Order
from pipeline.statuses import OrderStatus

SUBMITTED = "Order submitted successfully"

# Response headers (drf-spectacular documents a header parameter with `response=` as one).
_RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    description="Seconds to wait before retrying",
    response=[429, 503],
)
_LOCATION = OpenApiParameter(
    "Location",
    OpenApiTypes.URI,
    OpenApiParameter.HEADER,
    description="The order's status URL (GET /orders/{OrderId})",
    response=[200],
)
_COMMON_ERRORS: dict[int, Any] = {
    403: OpenApiResponse(ErrorSerializer, description="No API key, or an unknown, revoked or "
                         "expired one"),
    429: OpenApiResponse(
        ErrorSerializer,
        description="Over the key's rate, burst or daily quota; see Retry-After",
    ),
    500: OpenApiResponse(ErrorSerializer, description="An unexpected failure, logged; "
                         "retrying the same request will not help (no Retry-After)"),
    503: OpenApiResponse(ErrorSerializer, description="A backing store is unavailable; retry "
                         "after Retry-After seconds"),
}  # fmt: skip


class SubmitOrderView(APIView):
    """POST /submitorder."""

    @extend_schema(
        operation_id="submitOrder",
        summary="Submit an order",
        description=(
            "Writes a new PENDING order; the pipeline then reserves stock, charges and ships it. "
            "Send an `Idempotency-Key` to make retries safe: the same key with the same body "
            "returns the first response and creates no second order."
        ),
        request=SubmitOrderRequestSerializer,
        parameters=[
            OpenApiParameter(
                idempotency.HEADER,
                # idempotency.validate_key's rule, so a client following the schema is not
                # refused (schemathesis checks that).
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": idempotency.MAX_LENGTH,
                    "pattern": "^[!-~]+$",
                },
                OpenApiParameter.HEADER,
                required=False,
                description=f"Up to {idempotency.MAX_LENGTH} visible ASCII characters, e.g. "
                "a UUID the client made for this order.",
            ),
            _LOCATION,
            _RETRY_AFTER,
        ],
        responses={
            200: OpenApiResponse(
                SubmitOrderResponseSerializer,
                description="Order written (or, for a repeated Idempotency-Key, the first "
                "response again). Location: the order's status URL.",
            ),
            400: OpenApiResponse(ErrorSerializer, description="Malformed JSON or invalid order"),
            **_COMMON_ERRORS,
            413: OpenApiResponse(ErrorSerializer, description="Body larger than 64 KiB"),
            415: OpenApiResponse(ErrorSerializer, description="Body is not application/json"),
            422: OpenApiResponse(
                ErrorSerializer, description="Idempotency-Key reused with a different body"
            ),
        },
        examples=[
            OpenApiExample(
                "Seed request",
                value={"CustomerName": "John Doe", "Items": ["laptop", "mouse", "keyboard"]},
                request_only=True,
            ),
            OpenApiExample(
                "Full order",
                value={
                    "CustomerName": "Jane Roe",
                    "Items": [{"ItemName": "laptop", "Quantity": 2}, "mouse"],
                    "PaymentToken": "tok_approve",
                    "ShippingAddress": {
                        "Name": "Jane Roe",
                        "Line1": "1 Main St",
                        "City": "Springfield",
                        "PostalCode": "12345",
                        "Country": "US",
                    },
                },
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        """Validate the envelope, submit through client_order_submit, answer 200."""
        key: ClientAPIKey = request.auth
        # The serializer's rules as a plain function (it stays above, for the schema).
        fields = envelope_fields(request.data)
        submission = client_order_submit(
            client_id=key.client_id,
            fields=fields,
            body=request.data,
            idempotency_key=request.headers.get(idempotency.HEADER),
        )
        response = self._submitted(request, submission.order_id)
        if submission.replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    @staticmethod
    def _submitted(request: Request, order_id: str) -> Response:
        # The first answer is always PENDING; a replay repeats it, whatever happened since.
        body = {"message": SUBMITTED, "OrderId": order_id, "Status": str(OrderStatus.PENDING)}
        location = reverse("orders_api:order-detail", args=[order_id], request=request)
        return Response(body, status=200, headers={"Location": location})


class OrderDetailView(APIView):
    """GET /orders/<OrderId>."""

    @extend_schema(
        operation_id="getOrder",
        summary="An order's status and history",
        description="Only the key that created the order sees it; for any other key it does "
        "not exist (404), so order ids cannot be probed.",
        parameters=[_RETRY_AFTER],
        responses={
            200: OrderSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No such order for this key"),
            **_COMMON_ERRORS,
        },
    )
    def get(self, request: Request, order_id: str) -> Response:
        """The order as Order.as_json() has it, less the client's secrets."""
        key: ClientAPIKey = request.auth
        order = order_for_client(order_id=order_id, client_id=key.client_id)
        if order is None:
            raise NotFound("Order not found")
        return Response(public_fields(order))


def public_fields(order: Order) -> dict[str, Any]:
    """What the API shows of an order: Order.as_json() less the client's secrets and the
    portal's own business (which staff member acted on it)."""
    shown = order.as_json()
    shown["StatusHistory"] = [
        {k: v for k, v in entry.items() if k != "Actor"} for entry in shown.get("StatusHistory", [])
    ]
    if isinstance(shown.get("Shipment"), dict):
        shown["Shipment"].pop("ShippedBy", None)
    return {name: shown[name] for name in ORDER_FIELDS if name in shown}


_EXAMPLE_ORDER = {
    "OrderId": "9108d1a8-cf7b-5c80-9d29-3393b4492b2c",
    "CustomerName": "John Doe",
    "Items": [{"ItemName": "laptop", "Quantity": 1}, {"ItemName": "mouse", "Quantity": 1}],
    "Status": "REJECTED",
    "StatusReason": "Insufficient stock: laptop (requested 1, available 0)",
    "OrderDate": "2026-12-06T10:15:02.118Z",
    "LastUpdated": "2026-12-06T10:15:02.431Z",
    "StatusHistory": [
        {"Status": "PENDING", "At": "2026-12-06T10:15:02.118Z", "Reason": "Order received"},
        {
            "Status": "REJECTED",
            "At": "2026-12-06T10:15:02.431Z",
            "Reason": "Insufficient stock: laptop (requested 1, available 0)",
        },
    ],
    "Rejection": [
        {"ItemName": "laptop", "Requested": 1, "Available": 0, "Problem": "INSUFFICIENT_STOCK"}
    ],
}


class OrderListView(APIView):
    """GET /orders."""

    @extend_schema(
        operation_id="listOrders",
        summary="The calling key's orders, newest first",
        description=(
            "Only orders submitted with this API key, newest first (by OrderDate), from an index "
            "of the key's own orders. Filter by `status` and by when they were placed (`since`, "
            "`until`, inclusive). A page holds at most `limit` orders and may hold fewer when a "
            "status is asked for; `NextCursor` (opaque, signed, valid only for this key) fetches "
            "the next, send it with the same filters. The last page's NextCursor is null. An "
            "unknown query parameter is refused (400), so a misspelt filter is never ignored."
        ),
        parameters=[OrderListQuerySerializer, _RETRY_AFTER],
        responses={
            200: OpenApiResponse(OrderListSerializer, description="A page of orders"),
            400: OpenApiResponse(
                ErrorSerializer,
                description="A bad filter, limit or cursor (another key's, or altered)",
            ),
            **_COMMON_ERRORS,
        },
        examples=[
            OpenApiExample(
                "A page with more to come",
                value={"Orders": [_EXAMPLE_ORDER], "NextCursor": "eyJjIjoiYWJjZDEyMzQi...:1t2..."},
                response_only=True,
                status_codes=["200"],
            ),
            OpenApiExample(
                "The last page",
                value={"Orders": [], "NextCursor": None},
                response_only=True,
                status_codes=["200"],
            ),
            OpenApiExample(
                "A bad filter",
                value={
                    "message": "Invalid query",
                    "errors": {"status": '"LOST" is not a valid choice.'},
                },
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        """Validate the query, read one page through orders_of_client."""
        key: ClientAPIKey = request.auth
        query = OrderListQuerySerializer(data=request.query_params)
        unknown = sorted(set(request.query_params) - set(query.fields))
        if unknown:
            raise InvalidRequest(
                {name: "unknown query parameter" for name in unknown}, "Invalid query"
            )
        # DRF would skip an empty optional value, and keep the last of repeated ones: either
        # way the client would get something other than it asked for.
        bad = {
            name: "must be given once" if len(values) > 1 else "must not be empty"
            for name, values in request.query_params.lists()
            if len(values) > 1 or values[0] == ""
        }
        if bad:
            raise InvalidRequest(bad, "Invalid query")
        if not query.is_valid():
            raise InvalidRequest(flatten_errors(query.errors), "Invalid query")
        params = query.validated_data
        since = as_order_date(params["since"]) if "since" in params else None
        until = as_order_date(params["until"]) if "until" in params else None
        try:
            listing = orders_of_client(
                client_id=key.client_id,
                limit=params["limit"],
                cursor=params.get("cursor"),
                status=OrderStatus(params["status"]) if "status" in params else None,
                placed_from=since,
                placed_to=until,
            )
        except BadCursor as exc:
            raise InvalidRequest({"cursor": str(exc)}, "Invalid query") from exc
        return Response(
            {
                "Orders": [public_fields(order) for order in listing.orders],
                "NextCursor": listing.next_cursor,
            }
        )
