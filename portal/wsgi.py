"""The WSGI application gunicorn and Zappa serve."""

import os

from django.core.wsgi import get_wsgi_application

from pipeline import aws

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.production")

application = get_wsgi_application()

# Each worker makes the AWS clients its pages use now, not on its first request (the
# dashboard's first view in a worker paid ~0.3 s for the SQS and CloudWatch ones).
aws.warm(("dynamodb", "sqs", "cloudwatch"))
