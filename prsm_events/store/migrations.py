"""Versioned ClickHouse DDL: ``schemas/clickhouse/NNN_name.sql``, applied in order, each once.

When the store connects it applies every file whose version the table
``{database}.schema_migrations`` does not list yet, and then lists it. Each statement is also
written so that applying it again changes nothing (``IF NOT EXISTS``, ``MODIFY COLUMN`` to the
type the column has), so a store stopped halfway through a file finishes it on the next
connect, and two workers connecting at once to one server do no harm.

>>> [(m.version, m.name) for m in migrations()][:3]
[(1, 'usage'), (2, 'decisions_alerts'), (3, 'money_as_decimal')]
>>> migrations()[2].statements("prsm")[0]
'ALTER TABLE prsm.usage MODIFY COLUMN cost_usd Decimal(38, 9)'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["MIGRATIONS_TABLE", "Migration", "apply_migrations", "migrations"]

MIGRATIONS_TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self, database: str) -> list[str]:
        """The file's statements (``;``-separated, ``--`` comments dropped), for
        ``database``."""
        lines = [ln for ln in self.path.read_text().splitlines()
                 if not ln.lstrip().startswith("--")]
        return [s.strip().replace("{database}", database)
                for s in "\n".join(lines).split(";") if s.strip()]


def migrations() -> list[Migration]:
    """Every migration shipped, oldest first."""
    folder = Path(str(resources.files("prsm_events").joinpath("schemas/clickhouse")))
    found = []
    for path in sorted(folder.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        found.append(Migration(int(number), name, path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a version in {folder}")
    return found


def apply_migrations(command: Callable[[str], Any], applied: Callable[[], set[int]],
                     database: str) -> list[int]:
    """Apply the migrations not yet applied to ``database``, oldest first, and list each once
    done; the versions applied now. ``command`` runs one statement; ``applied`` reads the
    versions listed."""
    command(f"CREATE DATABASE IF NOT EXISTS {database}")
    command(f"CREATE TABLE IF NOT EXISTS {database}.{MIGRATIONS_TABLE} (version UInt32, "
            "name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
            "ENGINE = ReplacingMergeTree ORDER BY version")
    done = applied()
    now = []
    for migration in migrations():
        if migration.version in done:
            continue
        for statement in migration.statements(database):
            command(statement)
        command(f"INSERT INTO {database}.{MIGRATIONS_TABLE} (version, name) VALUES "
                f"({migration.version}, '{migration.name}')")
        now.append(migration.version)
    return now
