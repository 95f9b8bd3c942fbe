"""The batch's database: an SQLite file in --out that holds each submission's state and result.

Only the coordinating process writes it, one transaction per event, so that whatever kills the
batch (a crash, a reboot, SIGKILL) leaves every finished submission's result in it and nothing half
written. A submission is `running` from the moment it is handed to an executor until its result is
committed; a later run grades every `running` submission again, since its grading may have died.
Every hand-over is kept in `attempts`, so a run can show what it graded and how often.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

DATABASE_NAME = "batch.sqlite"
# A record's status: graded, an unusable submission (scored 0, the student's), or not graded (the
# grader's failure). Here, not in grader.batch.job, so that readers of records need not import grading.
GRADED, UNUSABLE, ERROR = "graded", "unusable", "error"
SCHEMA_VERSION = "1"
FOUND_KEY = "found"   # meta: the ids the latest run found, as a JSON list
CANVAS_IDS_KEY = "canvas_ids"   # meta: id -> Canvas user id, for submissions of a Canvas download (JSON)
MEMBERS_KEY = "members"         # meta: id -> its group's submitters, for a group's submission (JSON)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'done')),
    status TEXT,                -- graded | unusable | error, once done
    score REAL,
    max_score REAL,
    seed INTEGER,
    record TEXT,                -- the whole result as JSON, once done
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    pid INTEGER NOT NULL,
    arguments TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    submission_id TEXT NOT NULL,
    run INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    ended TEXT                  -- done, or why it is tried again
);
"""


class BatchMismatch(Exception):
    """--out holds a batch of another assignment, mode or seed."""


@dataclass(frozen=True)
class StoredSubmission:
    id: str
    content_hash: str
    state: str
    record: Optional[dict[str, Any]]


def setting_text(key: str, value: str) -> str:
    """A batch setting as its options say it: `only ""` is every task, `training False` --skip-training."""
    if key == "only":
        return f"--only {value!r}" if value else "every task (no --only)"
    if key == "training":
        return "--skip-training" if value == "False" else "the training tasks (no --skip-training)"
    return f"{key} {value}"


class BatchStore:
    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / DATABASE_NAME
        # Autocommit mode: every write below is its own explicit transaction.
        self.connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")  # a committed result survives a power cut
        self.connection.executescript(_SCHEMA)

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    # -- the batch ------------------------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        return dict(self.connection.execute("SELECT key, value FROM meta"))

    def bind(self, wanted: dict[str, str], replace: tuple[str, ...] = ()) -> dict[str, str]:
        """Records the batch's settings on its first run; on a later run, keeps them and refuses a
        different value for any but those in `replace` (which a regrade of everything may change).
        Returns the settings in force."""
        with self._transaction() as db:
            stored = dict(db.execute("SELECT key, value FROM meta"))
            if stored.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
                raise BatchMismatch(f"{self.path} was written by another version of the grader "
                                    f"(schema {stored['schema']}); grade into a new --out folder")
            for key, value in wanted.items():
                if key in stored and stored[key] != value and key not in replace:
                    raise BatchMismatch(f"{self.path} holds a batch graded with {setting_text(key, stored[key])}, "
                                        f"not {setting_text(key, value)}: resume it with the options it was started "
                                        "with, grade everything again with the new ones (--regrade), or grade into a "
                                        "new --out folder")
            merged = {"schema": SCHEMA_VERSION, **stored, **{k: v for k, v in wanted.items()
                                                             if k not in stored or k in replace}}
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", merged.items())
        return merged

    def begin_run(self, arguments: list[str]) -> int:
        with self._transaction() as db:
            cursor = db.execute("INSERT INTO runs (started_at, pid, arguments) VALUES (?, ?, ?)",
                                (time.time(), os.getpid(), json.dumps(arguments)))
            # What a killed run left running never ended: say so, then it is graded again.
            db.execute("UPDATE attempts SET ended = 'interrupted', ended_at = ? WHERE ended IS NULL",
                       (time.time(),))
        return int(cursor.lastrowid)

    def record_found(self, ids: list[str], canvas_ids: Optional[dict[str, str]] = None,
                     members: Optional[dict[str, list[str]]] = None) -> None:
        """The ids of the submissions the latest run found in the submissions folder: a submission
        graded by an earlier run and gone since (replaced by a newer upload) is not in the batch's
        grades any more (grader.batch.lms reads this); the Canvas user ids that a Canvas download's
        file names gave some of them; and the members of each group's submission."""
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [(FOUND_KEY, json.dumps(sorted(ids))), (CANVAS_IDS_KEY, json.dumps(canvas_ids or {})),
                            (MEMBERS_KEY, json.dumps(members or {}))])

    # -- submissions ----------------------------------------------------------------------------

    def stored(self) -> dict[str, StoredSubmission]:
        rows = self.connection.execute("SELECT id, content_hash, state, record FROM submissions")
        return {r[0]: StoredSubmission(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None) for r in rows}

    def claim(self, submission_id: str, source: str, content_hash: str, run: int) -> int:
        """Marks a submission as being graded; returns the attempt's number (1 for its first in this run)."""
        with self._transaction() as db:
            (previous,) = db.execute("SELECT COUNT(*) FROM attempts WHERE submission_id = ? AND run = ?",
                                     (submission_id, run)).fetchone()
            db.execute("""INSERT INTO submissions (id, source, content_hash, state) VALUES (?, ?, ?, 'running')
                          ON CONFLICT (id) DO UPDATE SET source = excluded.source,
                          content_hash = excluded.content_hash, state = 'running'""",
                       (submission_id, source, content_hash))
            db.execute("INSERT INTO attempts (submission_id, run, attempt, started_at) VALUES (?, ?, ?, ?)",
                       (submission_id, run, previous + 1, time.time()))
        return previous + 1

    def finish(self, submission_id: str, run: int, attempt: int, record: dict[str, Any]) -> None:
        """The submission's result, committed at once with the end of its attempt."""
        now = time.time()
        with self._transaction() as db:
            db.execute("""UPDATE submissions SET state = 'done', status = ?, score = ?, max_score = ?, seed = ?,
                          record = ?, finished_at = ? WHERE id = ?""",
                       (record["status"], record["score"], record["max_score"], record["seed"],
                        json.dumps(record), now, submission_id))
            self._end_attempt(db, submission_id, run, attempt, "done", now)

    def give_up_attempt(self, submission_id: str, run: int, attempt: int, why: str) -> None:
        """An attempt the infrastructure lost (not the student's doing): it will be tried again."""
        with self._transaction() as db:
            self._end_attempt(db, submission_id, run, attempt, why, time.time())

    @staticmethod
    def _end_attempt(db: sqlite3.Connection, submission_id: str, run: int, attempt: int, ended: str,
                     now: float) -> None:
        db.execute("""UPDATE attempts SET ended = ?, ended_at = ?
                      WHERE submission_id = ? AND run = ? AND attempt = ? AND ended IS NULL""",
                   (ended, now, submission_id, run, attempt))

    def attempts(self, run: Optional[int] = None) -> list[tuple[str, int, int, Optional[str]]]:
        """(submission, run, attempt, how it ended) for one run or all."""
        query = "SELECT submission_id, run, attempt, ended FROM attempts"
        rows = self.connection.execute(query + (" WHERE run = ?" if run is not None else "") + " ORDER BY rowid",
                                       (run,) if run is not None else ())
        return [tuple(r) for r in rows]
