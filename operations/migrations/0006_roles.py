"""The groups viewer, operator and admin with their permissions (operations/roles.py)."""

from django.db import migrations

from operations.roles import ROLES, ensure_permissions, sync_roles


def forwards(apps, schema_editor):
    ensure_permissions(apps)
    sync_roles(apps)


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0005_audit_append_only"),
        ("orders_api", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
