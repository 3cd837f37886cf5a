"""Replay jobs of a third queue: the webhook deliveries' dead-letter queue."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0007_staff_preferences"),
    ]

    operations = [
        migrations.AlterField(
            model_name="replayjob",
            name="queue",
            field=models.CharField(
                choices=[
                    ("orders-dlq", "Orders dead-letter queue"),
                    ("stream-failures", "Stream-failure queue"),
                    ("webhook-dlq", "Webhook deliveries dead-letter queue"),
                ],
                default="orders-dlq",
                max_length=20,
            ),
        ),
    ]
