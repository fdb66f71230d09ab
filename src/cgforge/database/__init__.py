"""The synthetic force-field database: a queue and store of stage-A/B CG records (SQLite)."""

from cgforge.database.store import (
    SCALAR_COLUMNS,
    SCHEMA_VERSION,
    STAGES,
    STATES,
    Database,
    Record,
    StoredArray,
    spec_key,
)

__all__ = [
    "SCALAR_COLUMNS",
    "SCHEMA_VERSION",
    "STAGES",
    "STATES",
    "Database",
    "Record",
    "StoredArray",
    "spec_key",
]
