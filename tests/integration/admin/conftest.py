"""Fixtures of the admin's tests: a staff member in each role, and the ops fixtures (dead AWS
endpoints unless a test asks for DynamoDB Local or the runtime)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tests.integration.ops.conftest import (  # noqa: F401 (fixtures used by these tests)
    customer_user,
    dead_endpoint,
    dlq,
    no_real_aws,
    scratch_queue,
    store,
)

ROLES = ("viewer", "operator", "admin")


def member(role: str) -> Any:
    """A staff member in one group (the groups come from the roles migration)."""
    user = get_user_model().objects.create_user(
        username=f"{role}-{uuid.uuid4().hex[:6]}", password="x" * 12, is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    return user


def client_for(user: Any) -> Client:
    """A test client logged in as `user`, checking CSRF tokens as a browser's would be."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.fixture
def role_client(db: None) -> Any:
    """A function: role -> a client logged in as a new member of that role."""
    return lambda role: client_for(member(role))


def csrf_post(client: Client, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    """A POST carrying the CSRF token a GET of an admin page gave the client."""
    client.get("/admin/")
    token = client.cookies["csrftoken"].value
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": token}, **kw)
