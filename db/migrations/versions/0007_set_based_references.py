"""PostgreSQL: references of observations and forecasts checked once per statement.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

A foreign key runs one lookup of the referenced row per inserted row: at COPY speed these
lookups were most of the time of a bulk load (bench/README.md, "Where PostgreSQL ingest time
goes"). On PostgreSQL this migration

* drops the foreign key from ``observations.batch_id`` to ``ingest_batches``: batches are never
  deleted, so the column keeps each row's provenance without a check per row;
* replaces the foreign keys ``observations.series_id``, ``forecasts.series_id`` and
  ``forecasts.run_id`` by triggers with the same guarantees, set-based: after each INSERT or
  UPDATE statement one query locks the referenced rows ``FOR KEY SHARE`` (as a foreign key
  check does, so they cannot be deleted until the writer commits) and raises
  ``foreign_key_violation`` (an ``IntegrityError``) naming a missing key; before a referenced
  row is deleted or its key changed, a row trigger refuses it while rows refer to it (a
  forecast run's delete cascades to its forecasts, as ``ON DELETE CASCADE`` did).

SQLite keeps its foreign keys: its lookups are cheap and its ingest meets its target.
Downgrade drops the triggers and restores the foreign keys.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (child table, child column, parent table, parent column, what deleting the parent does)
REFERENCES = (
    ("observations", "series_id", "series", "series_id", "restrict"),
    ("forecasts", "series_id", "series", "series_id", "restrict"),
    ("forecasts", "run_id", "forecast_runs", "run_id", "cascade"),
)
BATCH_FK = ("observations", "batch_id", "ingest_batches", "batch_id")

CHECK_FUNCTION = """
CREATE FUNCTION seqcast_check_references() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- AFTER INSERT/UPDATE ... REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT.
-- TG_ARGV: child column, parent table, parent column.
DECLARE
    missing text;
BEGIN
    EXECUTE format(
        'SELECT count(*) FROM (SELECT 1 FROM %1$I.%2$I p WHERE p.%3$I IN '
        '(SELECT n.%4$I FROM new_rows n) FOR KEY SHARE OF p) locked',
        TG_TABLE_SCHEMA, TG_ARGV[1], TG_ARGV[2], TG_ARGV[0]);
    EXECUTE format(
        'SELECT n.k::text FROM (SELECT DISTINCT %4$I AS k FROM new_rows) n '
        'WHERE n.k IS NOT NULL AND NOT EXISTS '
        '(SELECT 1 FROM %1$I.%2$I p WHERE p.%3$I = n.k) LIMIT 1',
        TG_TABLE_SCHEMA, TG_ARGV[1], TG_ARGV[2], TG_ARGV[0]) INTO missing;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert or update on table "%" violates its reference to table "%"',
            TG_TABLE_NAME, TG_ARGV[1]
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (%s)=(%s) is not present in table "%s".',
                                  TG_ARGV[0], missing, TG_ARGV[1]);
    END IF;
    RETURN NULL;
END
$fn$
"""

PARENT_FUNCTION = """
CREATE FUNCTION seqcast_referenced_row_changes() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- BEFORE DELETE OR UPDATE FOR EACH ROW on a referenced table.
-- TG_ARGV: parent column, child table, child column, 'cascade' or 'restrict' (on delete).
DECLARE
    referenced boolean;
    same_key boolean;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT ($1).%1$I IS NOT DISTINCT FROM ($2).%1$I', TG_ARGV[0])
            USING OLD, NEW INTO same_key;
        IF same_key THEN
            RETURN NEW;
        END IF;
    ELSIF TG_ARGV[3] = 'cascade' THEN
        EXECUTE format('DELETE FROM %1$I.%2$I c WHERE c.%3$I = ($1).%4$I',
                       TG_TABLE_SCHEMA, TG_ARGV[1], TG_ARGV[2], TG_ARGV[0]) USING OLD;
        RETURN OLD;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %1$I.%2$I c WHERE c.%3$I = ($1).%4$I)',
                   TG_TABLE_SCHEMA, TG_ARGV[1], TG_ARGV[2], TG_ARGV[0])
        USING OLD INTO referenced;
    IF referenced THEN
        RAISE EXCEPTION '% on table "%" violates the reference from table "%"',
            lower(TG_OP), TG_TABLE_NAME, TG_ARGV[1]
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$
"""


def _fk_name(child: str, column: str) -> str | None:
    """The name of the foreign key on ``child.column`` (None when there is none)."""
    name = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a "
            "ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
            "WHERE c.contype = 'f' AND c.conrelid = to_regclass(%(t)s) AND a.attname = %(c)s",
            {"t": child, "c": column},
        )
        .scalar()
    )
    return None if name is None else str(name)


def _drop_fk(child: str, column: str) -> None:
    name = _fk_name(child, column)
    if name is not None:
        op.drop_constraint(name, child, type_="foreignkey")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _drop_fk(*BATCH_FK[:2])
    op.execute(CHECK_FUNCTION)
    op.execute(PARENT_FUNCTION)
    for child, column, parent, key, on_delete in REFERENCES:
        _drop_fk(child, column)
        args = f"'{column}', '{parent}', '{key}'"
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER {child}_{column}_{event.lower()}_check AFTER {event} ON {child} "
                "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                f"EXECUTE FUNCTION seqcast_check_references({args})"
            )
        op.execute(
            f"CREATE TRIGGER {child}_{column}_referenced BEFORE DELETE OR UPDATE OF {key} "
            f"ON {parent} FOR EACH ROW EXECUTE FUNCTION "
            f"seqcast_referenced_row_changes('{key}', '{child}', '{column}', '{on_delete}')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for child, column, parent, key, on_delete in REFERENCES:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER {child}_{column}_{event}_check ON {child}")
        op.execute(f"DROP TRIGGER {child}_{column}_referenced ON {parent}")
        op.create_foreign_key(
            f"{child}_{column}_fkey",
            child,
            parent,
            [column],
            [key],
            ondelete="CASCADE" if on_delete == "cascade" else None,
        )
    op.execute("DROP FUNCTION seqcast_referenced_row_changes()")
    op.execute("DROP FUNCTION seqcast_check_references()")
    child, column, parent, key = BATCH_FK
    op.create_foreign_key(f"{child}_{column}_fkey", child, parent, [column], [key])
