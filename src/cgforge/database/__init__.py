"""The synthetic force-field database: a queue and store of stage-A/B/C CG records (SQLite)."""

from cgforge.database.store import (
    READABLE_VERSIONS,
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
    "READABLE_VERSIONS",
    "SCALAR_COLUMNS",
    "SCHEMA_VERSION",
    "STAGES",
    "STATES",
    "Database",
    "Record",
    "StoredArray",
    "spec_key",
]
