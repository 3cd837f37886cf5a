"""The operations app in the Django admin: one module per area, each registering its models.

data.py is the mechanism (DataAdmin over DynamoDB/SQS sources); queues.py the dead-letter
queues; jobs.py the replay and background jobs; audit.py the audit log; inventory.py and
orders.py the Inventory and Orders tables.
"""

from operations.admin import audit, inventory, jobs, orders, queues  # noqa: F401 (registers)
