"""The portal's routes: a front page, the order API at the seed's paths, its schema and docs, the
admin and the operations pages."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from portal.login import admin_login
from portal.views import home

urlpatterns = [
    # What README's http://127.0.0.1:8000 opens: the way to the dashboard and to the API docs.
    path("", home, name="home"),
    path("", include("orders_api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    # Before the admin's own routes: its login, with failed logins throttled per address.
    path("admin/login/", admin_login, name="throttled-login"),
    path("admin/", admin.site.urls),
    # Staff operations pages (dashboard, orders, inventory, DLQ replay, audit log).
    path("ops/", include("operations.urls")),
]
