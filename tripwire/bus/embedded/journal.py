"""The SQLite journal of the durable embedded bus: the file, its schema and every statement.

`tripwire run` needs a bus that survives a crash of its own process without running a server.
A journal in SQLite (WAL mode) gives that: `publish` returns once the event's row is committed.
This module is that file and nothing else: it opens the connections, commits one batch of
events, acks, cursors and key-value writes in one transaction, trims, checkpoints, and reads
catch-up pages and the saved cursors and acks of a consumer. It never touches the event loop:
the bus (`bus.py`) decides when a commit happens and on which thread; every function here is
synchronous and runs where it is called.

Durability: `synchronous=NORMAL` in WAL mode survives a crash of this process (the commit is
in the OS page cache), not a power loss; `sync="full"` adds an fsync per batch for that.

Events at or below every consumer's cursor are trimmed, a bounded step at a time (`TRIM_STEP`)
so that a commit stays short after a long backlog; consumers not running in this process hold
their events back, but only up to `max_age`.

Three connections, because each has its own rhythm: the writer commits, the reader (query-only)
serves catch-up pages and subscriptions on the loop while a commit may be running on the worker
thread, and the checkpointer moves the WAL into the database on the worker thread. SQLite's
automatic checkpoint is off: it would run inside whichever commit crosses the threshold, with an
fsync, stalling that publish (and, inline, the loop) for milliseconds.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sqlite3
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, id TEXT NOT NULL,
    ts REAL NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS consumers (name TEXT PRIMARY KEY, cursor INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS acks (
    consumer TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (consumer, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
"""

# Rows of one catch-up read; fewer back means the consumer has reached the end of the journal.
CATCH_UP_PAGE = 512
TRIM_STEP = 2000

Row = tuple[int, str, str, float, bytes]  # seq, subject, event id, publish time, body


@dataclasses.dataclass(slots=True)
class Contents:
    """What the bus keeps in memory, as the journal held it when it was opened."""

    last_seq: int
    # Ids published within the dedupe window, oldest first, with their publish times.
    recent_ids: list[tuple[str, float]]
    kv: dict[str, dict[str, bytes]]


class Journal:
    """One open journal file; build it with `open` (on the bus's worker thread)."""

    def __init__(
        self,
        *,
        db: sqlite3.Connection,
        reader: sqlite3.Connection,
        checkpointer: sqlite3.Connection,
        max_age: float,
        trimmed_upto: int,
    ) -> None:
        self.db = db  # the writer
        self._reader = reader
        self._checkpointer = checkpointer
        self._max_age = max_age
        self.trimmed_upto = trimmed_upto  # every event at or below it is deleted

    @classmethod
    def open(
        cls,
        path: pathlib.Path,
        *,
        sync: Literal["normal", "full"],
        max_age: float,
        dedupe_window: float,
    ) -> tuple[Journal, Contents]:
        """Open (or create) `path/journal.db` and read back what the bus keeps in memory."""
        file = path / "journal.db"
        db = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        db.execute("PRAGMA wal_autocheckpoint=0")  # see the module docstring
        db.executescript(_SCHEMA)
        first = db.execute("SELECT min(seq) FROM events").fetchone()[0]
        trimmed_upto = (first - 1) if first is not None else 0
        row = db.execute("SELECT max(seq) FROM events").fetchone()
        cursors = db.execute("SELECT max(cursor) FROM consumers").fetchone()
        horizon = time.time() - dedupe_window
        recent_ids: list[tuple[str, float]] = db.execute(
            "SELECT id, ts FROM events WHERE ts >= ? ORDER BY seq", (horizon,)
        ).fetchall()
        kv: dict[str, dict[str, bytes]] = {}
        for ns, key, value in db.execute("SELECT ns, key, value FROM kv"):
            kv.setdefault(ns, {})[key] = value
        contents = Contents(
            last_seq=max(row[0] or 0, cursors[0] or 0), recent_ids=recent_ids, kv=kv
        )
        reader = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only=1")
        checkpointer = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
        journal = cls(
            db=db,
            reader=reader,
            checkpointer=checkpointer,
            max_age=max_age,
            trimmed_upto=trimmed_upto,
        )
        return journal, contents

    def close(self) -> None:
        for db in (self.db, self._reader, self._checkpointer):
            db.close()

    # -- reading (the reader connection, on the loop) ------------------------------------------
    def saved_cursor(self, consumer: str) -> int | None:
        """The cursor the journal holds for `consumer`; None for a consumer never seen."""
        row = self._reader.execute(
            "SELECT cursor FROM consumers WHERE name = ?", (consumer,)
        ).fetchone()
        return None if row is None else int(row[0])

    def acks_above(self, consumer: str, cursor: int) -> set[int]:
        """Sequence numbers above `cursor` that `consumer` has acknowledged."""
        return {
            seq
            for (seq,) in self._reader.execute(
                "SELECT seq FROM acks WHERE consumer = ? AND seq > ?", (consumer, cursor)
            )
        }

    def page(self, subjects: Collection[str], after: int) -> list[tuple[int, bytes]]:
        """Up to `CATCH_UP_PAGE` events of `subjects` after `after`, in order: (seq, body)."""
        marks = ",".join("?" * len(subjects))
        rows: list[tuple[int, bytes]] = self._reader.execute(
            f"SELECT seq, body FROM events WHERE seq > ? AND subject IN ({marks})"  # noqa: S608
            " ORDER BY seq LIMIT ?",
            (after, *subjects, CATCH_UP_PAGE),
        ).fetchall()
        return rows

    # -- writing --------------------------------------------------------------------------------
    def trim_point(self, floor: int) -> int | None:
        """How far the next commit trims, given the lowest cursor of the running consumers."""
        if floor <= self.trimmed_upto:
            return None
        # A bounded step per commit keeps an inline commit short after a long backlog.
        return min(floor, self.trimmed_upto + TRIM_STEP)

    def commit(
        self,
        rows: Sequence[Row],
        acks: Sequence[tuple[str, int]],
        kv: Mapping[tuple[str, str], bytes | None],
        cursors: Mapping[str, int],
        trim: int | None,
    ) -> None:
        """One transaction: new events, acks, moved cursors, key-value writes, the trim.

        Positional, unlike the rest of the project: `run_in_executor` passes only positional
        arguments, and a `functools.partial` per batch would cost the writer for nothing.
        """
        db = self.db
        db.execute("BEGIN")
        try:
            if rows:
                db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
            # An ack at or below its consumer's new cursor is implied by the cursor: writing
            # it only to delete it below would touch the acks table on every in-order commit.
            above = [(c, seq) for c, seq in acks if seq > cursors.get(c, 0)]
            if above:
                db.executemany("INSERT OR IGNORE INTO acks VALUES (?, ?)", above)
            for name, cursor in cursors.items():
                db.execute(
                    "INSERT INTO consumers VALUES (?, ?) ON CONFLICT(name)"
                    " DO UPDATE SET cursor = excluded.cursor",
                    (name, cursor),
                )
                db.execute("DELETE FROM acks WHERE consumer = ? AND seq <= ?", (name, cursor))
            for (ns, key), value in kv.items():
                if value is None:
                    db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))
                else:
                    db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, value))
            if trim is not None:
                # Consumers not running in this process hold their events back, up to max_age.
                row = db.execute("SELECT min(cursor) FROM consumers").fetchone()
                floor = min(trim, row[0] if row[0] is not None else trim)
                aged = db.execute(
                    "SELECT max(seq) FROM (SELECT seq, ts FROM events WHERE seq > ?"
                    " ORDER BY seq LIMIT ?) WHERE ts < ?",
                    (self.trimmed_upto, TRIM_STEP, time.time() - self._max_age),
                ).fetchone()[0]
                floor = max(floor, aged or 0)
                db.execute(
                    "DELETE FROM events WHERE seq > ? AND seq <= ?", (self.trimmed_upto, floor)
                )
            db.execute("COMMIT")
            if trim is not None:
                self.trimmed_upto = max(self.trimmed_upto, floor)
        except BaseException:
            # Some errors (SQLITE_FULL) have already rolled the transaction back.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def checkpoint(self) -> None:
        """Move the WAL into the database without waiting for readers (the worker thread)."""
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
