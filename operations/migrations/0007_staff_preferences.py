"""Staff preferences: the time zone each staff member sees the portal's dates in."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("operations", "0006_roles"),
    ]

    operations = [
        migrations.CreateModel(
            name="StaffPreferences",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="portal_preferences",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "time_zone",
                    models.CharField(
                        blank=True,
                        help_text="An IANA time zone name, such as Europe/Paris.",
                        max_length=64,
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "staff preferences",
                "default_permissions": (),
            },
        ),
    ]
