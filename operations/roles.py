"""The portal's roles (groups viewer, operator, admin) and the permissions each one holds.

The groups are written by a data migration (operations/0006_roles) through `sync_roles`; a later
migration that adds permissions a role should hold (the webhooks' manage_webhooks) adds them
itself or calls `sync_roles` again. Every view and action checks its permission on the server.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)

# Apps whose view_* permissions every role holds.
VIEWED_APPS = ("operations", "orders_api")
# What an operator may do beyond looking: (app_label, codename).
OPERATOR_EXTRA = (
    ("operations", "add_inventoryitem"),
    ("operations", "change_inventoryitem"),
    ("operations", "delete_inventoryitem"),
    ("operations", "import_inventory"),
    ("operations", "cancel_order"),
    ("operations", "resubmit_order"),
    ("operations", "retry_shipping_order"),
    ("operations", "refund_order"),
    ("operations", "mark_shipped_order"),
    ("operations", "requeue_stranded_orders"),
    ("operations", "run_sweeper"),
    ("operations", "replay_deadletters"),
    ("operations", "delete_deadletter"),
    ("orders_api", "manage_webhooks"),  # added by the webhooks migration; skipped until then
)


def role_filter(role: str) -> Q:
    """The permissions (auth.Permission rows) a role holds."""
    viewer = Q(content_type__app_label__in=VIEWED_APPS, codename__startswith="view_")
    if role == VIEWER:
        return viewer
    operator = viewer
    for app_label, codename in OPERATOR_EXTRA:
        operator |= Q(content_type__app_label=app_label, codename=codename)
    if role == OPERATOR:
        return operator
    if role == ADMIN:
        return Q(content_type__app_label__in=VIEWED_APPS) | Q(
            content_type__app_label="auth", content_type__model__in=("user", "group")
        )
    raise ValueError(f"no such role: {role}")


def sync_roles(apps: Any, *, only_missing: bool = False) -> None:
    """Create the three groups (if missing) and give each exactly its permissions; with
    `only_missing`, leave groups that exist as they are (an admin may have changed them).

    `apps`: a migration's historical registry (or django.apps.apps). The permissions must
    exist already: call `ensure_permissions` first.
    """
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role in ROLES:
        group, created = group_model.objects.get_or_create(name=role)
        if created or not only_missing:
            group.permissions.set(permission_model.objects.filter(role_filter(role)))


def restore_missing_roles(**kwargs: Any) -> None:
    """post_migrate: bring back a role group that is gone (a database flushed by `manage.py
    flush` or a test), with its permissions; groups that exist are left alone."""
    from django.apps import apps

    ensure_permissions(apps)
    sync_roles(apps, only_missing=True)


def ensure_permissions(apps: Any) -> None:
    """Create the content types and permissions of every model now, not after the migrations
    (post_migrate), so a data migration can hand them out."""
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes

    for app_config in apps.get_app_configs():
        # Both functions skip an app config without models_module, which a migration's
        # historical configs lack; it is put back after, since the global registry's configs
        # must keep theirs (post_migrate skips the apps whose models_module is None).
        kept = getattr(app_config, "models_module", None)
        app_config.models_module = kept or True
        try:
            create_contenttypes(app_config, verbosity=0, apps=apps)
            create_permissions(app_config, verbosity=0, apps=apps)
        finally:
            app_config.models_module = kept
