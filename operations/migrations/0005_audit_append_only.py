"""The audit log is append-only in PostgreSQL: a trigger refuses to delete an entry or change one,
except to complete a pending intent once, or to drop the link to a deleted user (the entry
keeps the actor's name)."""

from django.db import migrations

# Columns a pending entry's completion may write; every other column must stay as it was.
COMPLETION = "ARRAY['outcome', 'message', 'detail', 'after', 'completed_at']"

CREATE = f"""
CREATE OR REPLACE FUNCTION operations_audit_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'the audit log is append-only: entry % cannot be deleted', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.user_id IS NOT NULL AND NEW.user_id IS NULL
     AND (to_jsonb(NEW) - 'user_id') = (to_jsonb(OLD) - 'user_id') THEN
    RETURN NEW;
  END IF;
  IF OLD.outcome = 'pending' AND NEW.outcome <> 'pending'
     AND (to_jsonb(NEW) - {COMPLETION}) = (to_jsonb(OLD) - {COMPLETION}) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the audit log is append-only: entry % cannot be changed', OLD.id
    USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS operations_audit_append_only ON operations_auditlogentry;
CREATE TRIGGER operations_audit_append_only
  BEFORE UPDATE OR DELETE ON operations_auditlogentry
  FOR EACH ROW EXECUTE FUNCTION operations_audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS operations_audit_append_only ON operations_auditlogentry;
DROP FUNCTION IF EXISTS operations_audit_append_only();
"""


def forwards(apps, schema_editor):
    # SQLite (a developer's quick start) has no plpgsql; the admin refuses edits there too.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("operations", "0004_admin_data_models")]

    operations = [migrations.RunPython(forwards, backwards)]
