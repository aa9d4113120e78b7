"""Engines and transactions. One short transaction per call into the core; nothing at import time."""

from __future__ import annotations

import fcntl
import functools
import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from clinic.settings import settings

READ_ONLY = "clinic_read_only"


def make_engine(url: str) -> Engine:
    """An engine that behaves the same under concurrency on SQLite and PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, future=True, pool_pre_ping=True)

    pool: dict = {}
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # SQLAlchemy 1.4 gives a SQLite file a NullPool: every transaction would open a connection,
        # run the PRAGMAs and close it, and closing the last connection checkpoints the WAL (~20 ms a
        # write). Kept connections are safe here: each process has its own engine (none is shared
        # across a fork), every transaction ends with COMMIT or ROLLBACK (no snapshot is held
        # between them) and `check_same_thread=False` lets the worker threads of `asyncio.to_thread`
        # take turns with one connection. Enough for the event loop plus its default thread pool.
        pool = {"poolclass": QueuePool, "pool_size": 8, "max_overflow": 16, "pool_timeout": 60}
    engine = create_engine(
        url, future=True, connect_args={"check_same_thread": False, "timeout": 30}, **pool
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see `_on_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # Writers take the write lock up front: concurrent writers then wait their turn instead
        # of failing with "database is locked" when a read transaction tries to upgrade. Readers
        # (see `Database.reading`) start a plain transaction: in WAL mode they never wait.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


class WriteTurns:
    """The write transactions of this process on one SQLite database take turns, first come first served.

    SQLite lets one writer in at a time, and a writer that finds the database locked retries after
    naps of up to 100 ms: a thread committing back to back (the reminder pass) kept another (the
    delivery loop's claims) waiting for seconds, and the webhook ingest's stores waited behind the
    Rasa process's writes (acknowledgements past 250 ms). Here a waiting writer queues and is handed
    the turn at once, in order; across processes, the turn's holder also holds an exclusive `flock`
    on `lock_path` (beside the database file), which the kernel hands to a waiting process the moment
    it is released (no naps), and which dies with its process. The flock is given back at the end of
    every turn, so the next turn of this process queues with the other processes' writers. A nested
    write transaction in the same thread, or a wait past `timeout`, goes on without a turn: SQLite's
    lock decides, as it would without this.
    """

    def __init__(self, timeout: float = 30.0, lock_path: Path | None = None) -> None:
        self.timeout = timeout
        self.lock_path = lock_path
        self._mutex = threading.Lock()
        self._queue: deque[tuple[int, threading.Lock]] = deque()
        self._owner: int | None = None
        self._lock_file: tuple[int, int] | None = None  # (pid, fd): a forked child opens its own

    @contextmanager
    def turn(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me:
            yield
            return
        with self._mutex:
            gate = None
            if self._owner is None:
                self._owner = me
            else:
                gate = threading.Lock()
                gate.acquire()
                self._queue.append((me, gate))
        if gate is not None and not gate.acquire(timeout=self.timeout):
            with self._mutex:
                if (me, gate) in self._queue:  # not handed over: go on without a turn
                    self._queue.remove((me, gate))
                    gate = None
        if gate is None and self._owner != me:
            yield
            return
        locked = self._lock_other_processes()
        try:
            yield
        finally:
            if locked is not None:
                fcntl.flock(locked, fcntl.LOCK_UN)
                _HELD.paths.discard(self.lock_path)
            with self._mutex:
                if self._queue:
                    self._owner, next_gate = self._queue.popleft()
                    next_gate.release()
                else:
                    self._owner = None

    def _lock_other_processes(self) -> int | None:
        """Wait for the cross-process turn (blocking this thread, as SQLite's busy handler would).
        Not when this thread holds it already through another `Database` on the same file: that would
        wait for itself for ever (SQLite's own lock then gives its usual error).
        """
        if self.lock_path is None or self.lock_path in _HELD.paths:
            return None
        if self._lock_file is None or self._lock_file[0] != os.getpid():
            self._lock_file = (os.getpid(), os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600))
        fd = self._lock_file[1]
        fcntl.flock(fd, fcntl.LOCK_EX)
        _HELD.paths.add(self.lock_path)
        return fd


class _Held(threading.local):
    """The cross-process turns this thread holds (lock paths)."""

    def __init__(self) -> None:
        self.paths: set[Path] = set()


_HELD = _Held()


class Database:
    """An engine plus its session factory; the core's functions take one of these."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, future=True, expire_on_commit=False)
        self._turns = None
        if self.engine.dialect.name == "sqlite":
            file = self.engine.url.database
            self._turns = WriteTurns(lock_path=Path(f"{file}-writers") if file and file != ":memory:" else None)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        with self._turns.turn() if self._turns else nullcontext(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A transaction that only reads: on SQLite it does not queue behind writers."""
        with self._sessions() as session, session.begin():
            session.connection(execution_options={READ_ONLY: True})
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


@functools.cache
def database() -> Database:
    """The process-wide database from `DATABASE_URL`, created on first use."""
    return Database(settings().database_url)
