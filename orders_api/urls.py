"""The order API's routes, at the seed's root paths."""

from django.urls import path

from orders_api.views import OrderDetailView, OrderListView, SubmitOrderView

app_name = "orders_api"

urlpatterns = [
    path("submitorder", SubmitOrderView.as_view(), name="submit-order"),
    path("orders", OrderListView.as_view(), name="order-list"),
    path("orders/<str:order_id>", OrderDetailView.as_view(), name="order-detail"),
]
