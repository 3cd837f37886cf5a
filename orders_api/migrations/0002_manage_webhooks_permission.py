"""The manage_webhooks permission, given to the operator and admin groups."""

from typing import Any

from django.db import migrations

ROLES_WITH_WEBHOOKS = ("operator", "admin")


def grant(apps: Any, schema_editor: Any) -> None:
    """Create the permission now (not at post_migrate) and add it to operator and admin.

    The groups come from the roles migration (operations/0006_roles, which runs first and
    could not give this permission yet: it did not exist); get_or_create keeps this safe on a
    database whose groups were removed by hand.
    """
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    content_type, _ = content_type_model.objects.get_or_create(
        app_label="orders_api", model="clientapikey"
    )
    permission, _ = permission_model.objects.get_or_create(
        content_type=content_type,
        codename="manage_webhooks",
        defaults={"name": "Can manage the webhook endpoints of API keys"},
    )
    for name in ROLES_WITH_WEBHOOKS:
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(permission)


def revoke(apps: Any, schema_editor: Any) -> None:
    """Take the permission away from the groups (the permission row goes with the model)."""
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    for group in group_model.objects.filter(name__in=ROLES_WITH_WEBHOOKS):
        group.permissions.remove(
            *permission_model.objects.filter(
                content_type__app_label="orders_api", codename="manage_webhooks"
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("orders_api", "0001_initial"),
        ("operations", "0006_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="clientapikey",
            options={
                "ordering": ("-created",),
                "permissions": [
                    ("manage_webhooks", "Can manage the webhook endpoints of API keys")
                ],
                "verbose_name": "client API key",
                "verbose_name_plural": "client API keys",
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
