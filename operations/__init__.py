"""The staff operations portal: dashboard, orders, inventory, DLQ replay and the audit log."""
