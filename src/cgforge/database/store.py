"""SQLite store of the synthetic force-field database (stage-A, -B and -C CG records).

One file holds every record of a database: its specification (what to simulate), its state in the
work queue (``pending`` → ``running`` → ``done`` | ``failed``), searchable scalar results, arrays
(RDF, potential, parameter vectors) with their grid and unit, and the provenance of the run.

Design (after ase.db and signac):

* SQLite in WAL mode, so readers (``status``, exports) work while the single writer process
  commits; every connection waits up to ``BUSY_TIMEOUT_MS`` for a lock instead of failing.
* A record's key is the sha256 of :func:`cgforge.provenance.normalised_json` of its
  specification, so the same specification always names the same record (300 and 300.0, and any
  dict order, hash alike) and adding it twice is harmless.
* ``meta`` holds the schema version and the fixed learning grids; every array that lives on a grid
  names it, and two databases merge only when their grids are identical.
* Schema versions: version 2 adds stage ``C`` to the ``stage`` CHECK of ``records``. A file of
  an older version is migrated (:data:`_MIGRATIONS`, one transaction) when it is opened
  writable; opened read-only, a version in :data:`READABLE_VERSIONS` is read as it is (its
  records are a subset of what the present schema holds), others are refused.
* Only one writer process may claim records at a time: :meth:`Database.requeue_running` (used on
  resume) assumes every ``running`` record belongs to a writer that has died.

Scalar columns carry their unit in their name. Diffusion coefficients are stored in m²/s (the
caller converts from nm²/ps with :data:`cgforge.units.NM2_PS_TO_M2_S` at this file boundary),
density in g/cm³, mass in amu (g/mol), temperature in K.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import json
import math
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import cgforge
from cgforge.errors import InputError
from cgforge.fileio import atomic_path
from cgforge.provenance import normalised_json

SCHEMA_VERSION = 2
#: Older schema versions that read-only connections read without migrating them.
READABLE_VERSIONS = (1,)
BUSY_TIMEOUT_MS = 60_000
STAGES = ("A", "B", "C")
STATES = ("pending", "running", "done", "failed")

#: Searchable scalar result columns of ``records`` (units in the names).
SCALAR_COLUMNS = (
    "mass_amu",
    "temperature_K",
    "density_g_cm3",
    "diffusion_aa_m2_s",
    "diffusion_cg_m2_s",
    "acceleration_factor",
    "rdf_deviation",
)
#: Scalar columns also filled from the specification when a record is added (searchable while
#: pending).
_SPEC_COLUMNS = ("mass_amu", "temperature_K")

SCHEMA = """
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE records (
    key                 TEXT PRIMARY KEY,
    stage               TEXT NOT NULL CHECK (stage IN ('A', 'B', 'C')),
    state               TEXT NOT NULL
                        CHECK (state IN ('pending', 'running', 'done', 'failed')),
    molecule            TEXT,
    parent_key          TEXT,
    mass_amu            REAL,
    temperature_K       REAL,
    density_g_cm3       REAL,
    diffusion_aa_m2_s   REAL,
    diffusion_cg_m2_s   REAL,
    acceleration_factor REAL,
    rdf_deviation       REAL,
    scalars_json        TEXT,
    spec_json           TEXT NOT NULL,
    error               TEXT,
    worker              TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_utc         TEXT NOT NULL,
    started_utc         TEXT,
    finished_utc        TEXT,
    provenance_json     TEXT
);
CREATE INDEX records_stage_state ON records (stage, state);
CREATE INDEX records_finished ON records (finished_utc);
CREATE INDEX records_parent ON records (parent_key);
CREATE TABLE arrays (
    key        TEXT NOT NULL REFERENCES records (key) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    dtype      TEXT NOT NULL,
    shape_json TEXT NOT NULL,
    unit       TEXT NOT NULL,
    grid_name  TEXT,
    data       BLOB NOT NULL,
    PRIMARY KEY (key, name)
);
"""

_RECORD_COLUMNS = (
    "key",
    "stage",
    "state",
    "molecule",
    "parent_key",
    *SCALAR_COLUMNS,
    "scalars_json",
    "spec_json",
    "error",
    "worker",
    "attempts",
    "created_utc",
    "started_utc",
    "finished_utc",
    "provenance_json",
)


def _records_table(name: str, stages: tuple[str, ...]) -> str:
    """The CREATE TABLE statement of ``records`` (as ``name``) allowing ``stages``."""
    start = SCHEMA.index("CREATE TABLE records")
    table = SCHEMA[start : SCHEMA.index(";", start)]
    allowed = ", ".join(f"'{s}'" for s in stages)
    table = table.replace(
        "CHECK (stage IN ('A', 'B', 'C'))", f"CHECK (stage IN ({allowed}))"
    ).replace("CREATE TABLE records", f"CREATE TABLE {name}")
    return table


# Upgrades from an older schema version to the next one: {old_version: SQL}, run in one
# transaction with foreign keys off; an older file without an entry here is refused.
# 1 → 2: SQLite cannot change a CHECK constraint, so ``records`` is rebuilt with stage 'C'
# allowed (rows, rowids and indexes kept; the arrays table is untouched).
_MIGRATIONS: dict[int, str] = {
    1: ";\n".join(
        [
            _records_table("records_v2", STAGES),
            f"INSERT INTO records_v2 (rowid, {', '.join(_RECORD_COLUMNS)}) "
            f"SELECT rowid, {', '.join(_RECORD_COLUMNS)} FROM records",
            "DROP TABLE records",
            "ALTER TABLE records_v2 RENAME TO records",
            "CREATE INDEX records_stage_state ON records (stage, state)",
            "CREATE INDEX records_finished ON records (finished_utc)",
            "CREATE INDEX records_parent ON records (parent_key)",
        ]
    )
}


class StoredArray(NamedTuple):
    """One array of a record: values, unit (e.g. ``"nm"``, ``"kJ/mol"``, ``"1"``), grid name."""

    data: np.ndarray
    unit: str
    grid_name: str | None


@dataclass
class Record:
    """One record as read back from the database."""

    key: str
    stage: str
    state: str
    molecule: str | None
    parent_key: str | None
    spec: dict[str, Any]
    scalars: dict[str, Any]
    arrays: dict[str, StoredArray] = field(default_factory=dict)
    error: str | None = None
    worker: str | None = None
    attempts: int = 0
    created_utc: str | None = None
    started_utc: str | None = None
    finished_utc: str | None = None
    provenance: dict[str, Any] | None = None


def _plain(value: Any) -> Any:
    """JSON-plain copy of ``value``: numpy scalars/arrays → Python, tuples → lists, paths → str."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def spec_key(spec: Mapping[str, Any]) -> str:
    """The record key of a specification: sha256 (hex) of its normalised JSON."""
    return hashlib.sha256(normalised_json(_plain(spec)).encode()).hexdigest()


def _now() -> str:
    """Current UTC time as fixed-width ISO 8601 (microseconds), so text order is time order."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


def _normalise_grids(grids: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Grids as ``{name: {"values": [...], "unit": str}}``; accepts ``(values, unit)`` too."""
    if not isinstance(grids, Mapping) or not grids:
        raise InputError(
            "grids must be a non-empty dict {name: {'values': [...], 'unit': 'nm'}}; give the "
            "fixed r grids of the RDF and the potential"
        )
    out: dict[str, dict[str, Any]] = {}
    for name, grid in grids.items():
        if isinstance(grid, Mapping):
            values, unit = grid.get("values"), grid.get("unit")
        elif isinstance(grid, tuple | list) and len(grid) == 2:
            values, unit = grid
        else:
            raise InputError(
                f"grid '{name}' must be {{'values': [...], 'unit': ...}} or (values, unit)"
            )
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)):
            raise InputError(f"grid '{name}' must be a finite 1-D array of at least 2 values")
        if not isinstance(unit, str) or not unit:
            raise InputError(f"grid '{name}' needs a unit string, e.g. 'nm'")
        out[str(name)] = {"values": arr.tolist(), "unit": unit}
    return out


def _array_blob(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _blob_array(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


class Database:
    """A cgforge force-field database file. Use :meth:`init` or :meth:`open`, not the constructor.

    Usable as a context manager; the connection is closed on exit.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._conn = conn
        self.grids: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def init(
        cls, path: str | Path, grids: Mapping[str, Any], *, exist_ok: bool = False
    ) -> Database:
        """Create a new database at ``path`` with the fixed learning ``grids``.

        ``grids`` maps a grid name to ``{"values": 1-D array, "unit": str}`` (e.g. ``"rdf"`` and
        ``"potential"`` r grids in nm). With ``exist_ok`` an existing cgforge database with the
        same grids is opened instead; different grids are refused.
        """
        target = Path(path)
        norm = _normalise_grids(grids)
        if target.exists():
            if not exist_ok:
                raise InputError(
                    f"database '{target}' already exists; open it, or pass exist_ok to reuse it"
                )
            db = cls.open(target)
            if normalised_json(db.grids) != normalised_json(norm):
                db.close()
                raise InputError(
                    f"database '{target}' exists with different grids; use another path"
                )
            return db
        if not target.parent.is_dir():
            raise InputError(f"directory '{target.parent}' does not exist; create it first")
        try:
            conn = sqlite3.connect(target, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise InputError(
                f"cannot create the database '{target}': {exc}; give a path in a writable directory"
            ) from None
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "created_utc": _now(),
                "cgforge_version": cgforge.__version__,
                "grids": json.dumps(norm),
            }
            conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            with contextlib.suppress(OSError):
                target.unlink()
            raise
        conn.close()
        return cls.open(target)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> Database:
        """Open an existing database; refuses files that are not a cgforge database."""
        target = Path(path)
        if not target.is_file():
            raise InputError(
                f"no database at '{target}'; create one with Database.init (cgforge db init)"
            )
        mode = "ro" if readonly else "rw"
        uri = f"file:{target.resolve().as_posix()}?mode={mode}"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                tables = {
                    row[0]
                    for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            except sqlite3.DatabaseError as exc:
                raise InputError(
                    f"'{target}' is not an SQLite file ({exc}); give a database made by "
                    "cgforge db init"
                ) from None
            if "meta" not in tables or "records" not in tables:
                raise InputError(
                    f"'{target}' is an SQLite file but not a cgforge database (no meta/records "
                    "table); give a database made by cgforge db init"
                )
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
            if "schema_version" not in meta or "grids" not in meta:
                raise InputError(
                    f"'{target}' has no cgforge schema_version/grids in its meta table; give a "
                    "database made by cgforge db init"
                )
            try:
                version = int(meta["schema_version"])
            except ValueError:
                raise InputError(
                    f"'{target}' has an unreadable schema_version {meta['schema_version']!r}; "
                    "give a database made by cgforge db init"
                ) from None
            if version > SCHEMA_VERSION:
                raise InputError(
                    f"'{target}' has schema version {version}, newer than this cgforge "
                    f"({cgforge.__version__}, schema {SCHEMA_VERSION}); upgrade cgforge"
                )
            if version < SCHEMA_VERSION and not (readonly and version in READABLE_VERSIONS):
                version = cls._migrate(conn, target, version, readonly)
            if not readonly:
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA journal_mode = WAL")
        except BaseException:
            conn.close()
            raise
        db = cls(target, conn, readonly=readonly)
        db.meta = {
            "schema_version": version,
            "created_utc": meta.get("created_utc"),
            "cgforge_version": meta.get("cgforge_version"),
        }
        db.grids = json.loads(meta["grids"])
        return db

    @staticmethod
    def _migrate(conn: sqlite3.Connection, target: Path, version: int, readonly: bool) -> int:
        """Upgrade an older schema in one transaction, or refuse when no migration exists."""
        if any(v not in _MIGRATIONS for v in range(version, SCHEMA_VERSION)):
            raise InputError(
                f"'{target}' has schema version {version}, older than this cgforge's "
                f"{SCHEMA_VERSION}, and cannot be migrated; open it with the cgforge that made it "
                "and export it, or rebuild the database"
            )
        if readonly:
            raise InputError(
                f"'{target}' has the older schema version {version}; open it once writable to "
                f"migrate it to {SCHEMA_VERSION}"
            )
        conn.execute("PRAGMA foreign_keys = OFF")  # rebuilding records must not cascade
        conn.execute("BEGIN IMMEDIATE")
        try:
            for v in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[v].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(
                "UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),)
            )
            problems = conn.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise InputError(
                    f"'{target}': migrating to schema {SCHEMA_VERSION} left {len(problems)} "
                    "arrays without their record; the file was not changed"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return SCHEMA_VERSION

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so concurrent writers serialise cleanly)."""
        if self.readonly:
            raise InputError(f"database '{self.path}' is open read-only; open it writable")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _state(self, key: str) -> str:
        row = self._conn.execute("SELECT state FROM records WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise InputError(f"no record with key {key} in '{self.path}'")
        return row[0]

    # ------------------------------------------------------------------ queue
    def add_pending(self, spec: Mapping[str, Any]) -> str:
        """Add a record to simulate; returns its key. Adding the same specification again is a
        no-op that returns the same key.

        ``spec`` must hold ``stage`` (``"A"``, ``"B"`` or ``"C"``) and ``molecule``; stages B
        and C need ``parent_key`` (their stage-A record). ``mass_amu`` and ``temperature_K``, if present, are
        copied into the searchable columns.
        """
        plain = _plain(spec)
        if not isinstance(plain, dict):
            raise InputError("a record specification must be a dict")
        stage = plain.get("stage")
        if stage not in STAGES:
            raise InputError(f"spec 'stage' must be 'A', 'B' or 'C', got {stage!r}")
        molecule = plain.get("molecule")
        if not isinstance(molecule, str) or not molecule:
            raise InputError("spec needs a 'molecule' name (string)")
        parent = plain.get("parent_key")
        if stage in ("B", "C") and not isinstance(parent, str):
            raise InputError(f"a stage-{stage} spec needs 'parent_key' naming its stage-A record")
        try:
            spec_json = json.dumps(plain, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(f"spec is not plain JSON data ({exc}); use numbers/strings") from None
        key = spec_key(plain)
        columns = {c: _finite(c, plain[c]) for c in _SPEC_COLUMNS if plain.get(c) is not None}
        names = ["key", "stage", "state", "molecule", "parent_key", "spec_json", "created_utc"]
        values = [key, stage, "pending", molecule, parent, spec_json, _now()]
        names += list(columns)
        values += list(columns.values())
        with self._write() as conn:
            conn.execute(
                f"INSERT OR IGNORE INTO records ({', '.join(names)}) "
                f"VALUES ({', '.join('?' * len(names))})",
                values,
            )
        return key

    def claim(self, stage: str | None = None, worker: str = "") -> tuple[str, dict] | None:
        """Atomically move the oldest pending record (of ``stage``, if given) to ``running``.

        Returns ``(key, spec)``, or None when nothing is pending.
        """
        if stage is not None and stage not in STAGES:
            raise InputError(f"stage must be 'A', 'B', 'C' or None, got {stage!r}")
        where, args = ("state = 'pending'", [])
        if stage is not None:
            where += " AND stage = ?"
            args.append(stage)
        with self._write() as conn:
            row = conn.execute(
                f"SELECT key, spec_json FROM records WHERE {where} "
                "ORDER BY created_utc, rowid LIMIT 1",
                args,
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE records SET state = 'running', worker = ?, started_utc = ?, "
                "attempts = attempts + 1, error = NULL WHERE key = ?",
                (worker, _now(), row[0]),
            )
        return row[0], json.loads(row[1])

    def requeue_running(self) -> int:
        """Put every ``running`` record back to ``pending`` (after a writer died); returns how
        many. Only call it when no other writer is working on this database."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE records SET state = 'pending', worker = NULL, started_utc = NULL "
                "WHERE state = 'running'"
            )
        return cur.rowcount

    def requeue_failed(self, max_attempts: int | None = None) -> int:
        """Put ``failed`` records (with fewer than ``max_attempts`` attempts) back to pending."""
        sql = "UPDATE records SET state = 'pending' WHERE state = 'failed'"
        args: list[Any] = []
        if max_attempts is not None:
            sql += " AND attempts < ?"
            args.append(int(max_attempts))
        with self._write() as conn:
            cur = conn.execute(sql, args)
        return cur.rowcount

    def complete(
        self,
        key: str,
        scalars: Mapping[str, Any],
        arrays: Mapping[str, tuple[Any, str, str | None]],
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        """Store the results of a running record and mark it done, in one transaction.

        ``scalars``: values for the columns in :data:`SCALAR_COLUMNS` (units in the names; must
        be finite) plus any further JSON-plain values, kept in ``scalars_json``.
        ``arrays``: ``{name: (array, unit, grid_name)}``; a named grid must be one of the
        database's grids and the array's last axis must match its length.
        """
        columns: dict[str, float] = {}
        extra: dict[str, Any] = {}
        for name, value in _plain(dict(scalars)).items():
            if name in SCALAR_COLUMNS:
                columns[name] = _finite(name, value)
            else:
                extra[name] = value
        rows = []
        for name, item in arrays.items():
            if not (isinstance(item, tuple | list) and len(item) == 3):
                raise InputError(f"array '{name}' must be given as (array, unit, grid_name)")
            values, unit, grid_name = item
            arr = np.ascontiguousarray(np.asarray(values))
            if arr.dtype == object:
                raise InputError(f"array '{name}' is not numeric; give a numeric array")
            if not isinstance(unit, str) or not unit:
                raise InputError(f"array '{name}' needs a unit string ('1' if dimensionless)")
            if grid_name is not None:
                if grid_name not in self.grids:
                    raise InputError(
                        f"array '{name}' names grid '{grid_name}', not one of this database's "
                        f"grids {sorted(self.grids)}"
                    )
                n = len(self.grids[grid_name]["values"])
                if arr.ndim == 0 or arr.shape[-1] != n:
                    raise InputError(
                        f"array '{name}' has shape {arr.shape} but grid '{grid_name}' has {n} "
                        "points; sample it on the database grid"
                    )
            rows.append(
                (
                    key,
                    name,
                    arr.dtype.str,
                    json.dumps(list(arr.shape)),
                    unit,
                    grid_name,
                    _array_blob(arr),
                )
            )
        prov = json.dumps(_plain(provenance), allow_nan=False) if provenance is not None else None
        with self._write() as conn:
            state = self._state(key)
            if state != "running":
                raise InputError(f"record {key} is '{state}', not 'running'; claim it first")
            conn.execute("DELETE FROM arrays WHERE key = ?", (key,))
            conn.executemany(
                "INSERT INTO arrays (key, name, dtype, shape_json, unit, grid_name, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            sets = ", ".join(f"{c} = ?" for c in columns)
            conn.execute(
                "UPDATE records SET state = 'done', error = NULL, finished_utc = ?, "
                f"provenance_json = ?, scalars_json = ?{', ' + sets if sets else ''} "
                "WHERE key = ?",
                [_now(), prov, json.dumps(extra, allow_nan=False), *columns.values(), key],
            )

    def fail(self, key: str, reason: str) -> None:
        """Mark a record failed with a one-line ``reason``."""
        with self._write() as conn:
            self._state(key)
            conn.execute(
                "UPDATE records SET state = 'failed', error = ?, finished_utc = ? WHERE key = ?",
                (str(reason), _now(), key),
            )

    # ------------------------------------------------------------------ queries
    def counts(self) -> dict[str, dict[str, int]]:
        """Number of records ``{stage: {state: n}}`` (every stage and state present, 0 if none)."""
        out = {stage: dict.fromkeys(STATES, 0) for stage in STAGES}
        for stage, state, n in self._conn.execute(
            "SELECT stage, state, COUNT(*) FROM records GROUP BY stage, state"
        ):
            out[stage][state] = n
        return out

    def failures(self) -> list[dict[str, Any]]:
        """Failed records with their reasons, most recent first."""
        cur = self._conn.execute(
            "SELECT key, stage, molecule, error, worker, attempts, finished_utc FROM records "
            "WHERE state = 'failed' ORDER BY finished_utc DESC"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def throughput(self, hours: float = 1.0) -> float:
        """Records finished as done per hour over the last ``hours`` hours."""
        if not hours > 0:
            raise InputError(f"hours must be positive, got {hours}")
        cutoff = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=hours)).isoformat(
            timespec="microseconds"
        )
        (n,) = self._conn.execute(
            "SELECT COUNT(*) FROM records WHERE state = 'done' AND finished_utc >= ?", (cutoff,)
        ).fetchone()
        return n / hours

    def get(self, key: str) -> Record:
        """The record ``key`` with its arrays."""
        row = self._conn.execute(
            f"SELECT {', '.join(_RECORD_COLUMNS)} FROM records WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            raise InputError(f"no record with key {key} in '{self.path}'")
        return self._record(row)

    def iter_done(self, stage: str | None = None) -> Iterator[Record]:
        """Done records (of ``stage``, if given) with their arrays, in order of completion."""
        where, args = "state = 'done'", []
        if stage is not None:
            where += " AND stage = ?"
            args.append(stage)
        rows = self._conn.execute(
            f"SELECT {', '.join(_RECORD_COLUMNS)} FROM records WHERE {where} "
            "ORDER BY finished_utc, rowid",
            args,
        ).fetchall()
        for row in rows:
            yield self._record(row)

    def _arrays(self, key: str) -> dict[str, StoredArray]:
        out = {}
        for name, dtype, shape_json, unit, grid_name, data in self._conn.execute(
            "SELECT name, dtype, shape_json, unit, grid_name, data FROM arrays WHERE key = ? "
            "ORDER BY name",
            (key,),
        ):
            arr = _blob_array(data)
            if arr.dtype.str != dtype or list(arr.shape) != json.loads(shape_json):
                raise InputError(
                    f"array '{name}' of record {key} in '{self.path}' is corrupt (dtype/shape "
                    "mismatch); rerun that record"
                )
            out[name] = StoredArray(arr, unit, grid_name)
        return out

    def _record(self, row: tuple) -> Record:
        d = dict(zip(_RECORD_COLUMNS, row, strict=True))
        scalars = {c: d[c] for c in SCALAR_COLUMNS if d[c] is not None}
        if d["scalars_json"]:
            scalars.update(json.loads(d["scalars_json"]))
        return Record(
            key=d["key"],
            stage=d["stage"],
            state=d["state"],
            molecule=d["molecule"],
            parent_key=d["parent_key"],
            spec=json.loads(d["spec_json"]),
            scalars=scalars,
            arrays=self._arrays(d["key"]),
            error=d["error"],
            worker=d["worker"],
            attempts=d["attempts"],
            created_utc=d["created_utc"],
            started_utc=d["started_utc"],
            finished_utc=d["finished_utc"],
            provenance=json.loads(d["provenance_json"]) if d["provenance_json"] else None,
        )

    # ------------------------------------------------------------------ merge and export
    def merge(self, other_path: str | Path) -> dict[str, int]:
        """Bring in the records of another database with identical grids, in one transaction.

        Absent records are inserted (a ``running`` one as ``pending``: its writer is elsewhere);
        a present record that is not done is replaced by the other's done record; everything else
        is kept. Returns ``{"added": n, "replaced": n, "kept": n}``.
        """
        with Database.open(other_path, readonly=True) as other:
            if normalised_json(other.grids) != normalised_json(self.grids):
                raise InputError(
                    f"cannot merge '{other.path}' into '{self.path}': their learning grids "
                    "differ; merge only databases made with the same grids"
                )
            if other.path.resolve() == self.path.resolve():
                raise InputError(f"cannot merge '{self.path}' into itself")
            stats = {"added": 0, "replaced": 0, "kept": 0}
            cols = ", ".join(_RECORD_COLUMNS)
            with self._write() as conn:
                for row in other._conn.execute(f"SELECT {cols} FROM records"):
                    d = dict(zip(_RECORD_COLUMNS, row, strict=True))
                    mine = conn.execute(
                        "SELECT state FROM records WHERE key = ?", (d["key"],)
                    ).fetchone()
                    if mine is not None and not (mine[0] != "done" and d["state"] == "done"):
                        stats["kept"] += 1
                        continue
                    if d["state"] == "running":
                        d.update(state="pending", worker=None, started_utc=None)
                    if mine is not None:
                        conn.execute("DELETE FROM records WHERE key = ?", (d["key"],))
                        conn.execute("DELETE FROM arrays WHERE key = ?", (d["key"],))
                        stats["replaced"] += 1
                    else:
                        stats["added"] += 1
                    conn.execute(
                        f"INSERT INTO records ({cols}) VALUES ({', '.join('?' * len(d))})",
                        list(d.values()),
                    )
                    conn.executemany(
                        "INSERT INTO arrays (key, name, dtype, shape_json, unit, grid_name, data) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        other._conn.execute(
                            "SELECT key, name, dtype, shape_json, unit, grid_name, data "
                            "FROM arrays WHERE key = ?",
                            (d["key"],),
                        ).fetchall(),
                    )
        return stats

    def export_npz(
        self, directory: str | Path, format: str = "npz", *, overwrite: bool = False
    ) -> dict[str, Any]:
        """Export done records for learning: per stage, ``stage_<S>.npz`` with every array that
        one shape, unit and grid in all records stacked as ``(n_records, ...)``, its unit as
        ``unit_<name>`` and grid name as ``grid_of_<name>``, the record ``key`` array and the
        grids (``grid_<g>``, ``unit_grid_<g>``); and a scalar table ``stage_<S>.csv`` (or ``.parquet`` with ``format="parquet"``, needs pyarrow).

        A ``directory`` that exists and is not empty is refused unless ``overwrite`` (files of
        the same name are replaced then). Returns ``{"files": [paths], "skipped": {stage: [array
        names of varying shape]}}``.
        """
        if format not in ("npz", "parquet"):
            raise InputError(f"export format must be 'npz' or 'parquet', got {format!r}")
        if format == "parquet":
            try:
                import pyarrow
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise InputError(
                    "format='parquet' needs pyarrow, which is not installed; install pyarrow or "
                    "use format='npz'",
                    parameters="format",
                ) from None
        out_dir = Path(directory)
        if out_dir.exists() and not out_dir.is_dir():
            raise InputError(f"export directory '{out_dir}' is a file; give a directory path")
        if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
            raise InputError(
                f"export directory '{out_dir}' is not empty; choose a new one, or pass overwrite "
                "to replace files of the same name"
            )
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot create the export directory '{out_dir}': {exc.strerror or exc}; give a "
                "writable path"
            ) from None
        files: list[Path] = []
        skipped: dict[str, list[str]] = {}
        for stage in STAGES:
            records = list(self.iter_done(stage))
            if not records:
                continue
            payload: dict[str, np.ndarray] = {"key": np.array([r.key for r in records])}
            names = sorted({n for r in records for n in r.arrays})
            skipped[stage] = []
            for name in names:
                items = [r.arrays.get(name) for r in records]
                first = items[0]
                if any(
                    it is None
                    or it.data.shape != first.data.shape
                    or it.unit != first.unit
                    or it.grid_name != first.grid_name
                    for it in items
                ):
                    skipped[stage].append(name)
                    continue
                payload[name] = np.stack([it.data for it in items])
                payload[f"unit_{name}"] = np.array(first.unit)
                if first.grid_name is not None:
                    payload[f"grid_of_{name}"] = np.array(first.grid_name)
            for gname, grid in self.grids.items():
                payload[f"grid_{gname}"] = np.asarray(grid["values"], dtype=float)
                payload[f"unit_grid_{gname}"] = np.array(grid["unit"])
            npz_path = out_dir / f"stage_{stage}.npz"
            with atomic_path(npz_path) as tmp, open(tmp, "wb") as handle:
                np.savez_compressed(handle, **payload)
            files.append(npz_path)
            files.append(self._write_scalar_table(out_dir, stage, records, format))
        return {"files": files, "skipped": skipped}

    @staticmethod
    def _write_scalar_table(out_dir: Path, stage: str, records: list[Record], format: str) -> Path:
        extra = sorted({k for r in records for k in r.scalars if k not in SCALAR_COLUMNS})
        header = ["key", "molecule", "parent_key", *SCALAR_COLUMNS, *extra]
        rows = [
            [r.key, r.molecule, r.parent_key, *(r.scalars.get(c) for c in header[3:])]
            for r in records
        ]
        if format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            path = out_dir / f"stage_{stage}.parquet"
            table = pa.table({h: [row[i] for row in rows] for i, h in enumerate(header)})
            with atomic_path(path) as tmp:
                pq.write_table(table, tmp)
            return path
        path = out_dir / f"stage_{stage}.csv"
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                writer.writerow(["" if v is None else v for v in row])
        return path


def _finite(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"scalar '{name}' must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(
            f"scalar '{name}' is {number}; record a failed simulation with fail() instead"
        )
    return number
