-- taskq schema, version 1.
-- This file is the schema's one source of truth: the taskq binary carries it
-- (SwiftPM embeds migrations/*.sql at build time: Package.swift, Migrator.swift)
-- and applies it in a BEGIN IMMEDIATE transaction. Times are UTC ISO 8601 text with milliseconds
-- ('2026-11-26T12:44:16.123Z'): readable as they are, and text order is time order.

-- Which migrations this database has had. PRAGMA user_version mirrors the highest
-- version, so opening a database costs one pragma read.
CREATE TABLE taskq_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

-- One row per task, and per stop sentinel (kind 'taskq.stop').
CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY,               -- max(id)+1: a task enqueued after a sentinel has a larger id (no
                                                    -- AUTOINCREMENT: it costs an extra page write per insert)
    kind         TEXT    NOT NULL CHECK (length(kind) BETWEEN 1 AND 200),
    queue        TEXT    NOT NULL DEFAULT 'default' CHECK (length(queue) BETWEEN 1 AND 200),
    state        TEXT    NOT NULL DEFAULT 'queued'
                 CHECK (state = 'queued' OR state = 'running' OR state = 'succeeded' OR state = 'failed' OR state = 'cancelled'),
    priority     INTEGER NOT NULL DEFAULT 0,        -- higher runs first
    payload      TEXT    NOT NULL DEFAULT 'null',   -- JSON, given to the handler on stdin
    run_at       TEXT    NOT NULL,                  -- not claimed before this time (delay, retry backoff)
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- attempts started, this one included
    max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    timeout_s    REAL    CHECK (timeout_s IS NULL OR timeout_s > 0), -- per attempt; NULL = none
    owner        INTEGER,                           -- processes.id of the worker running it
    created_at   TEXT    NOT NULL,
    started_at   TEXT,                              -- start of the latest attempt
    finished_at  TEXT,
    result       BLOB,                              -- the handler's stdout, byte for byte (TEXT when it is UTF-8)
    last_error   TEXT,                              -- why the latest attempt failed, for people
    -- The state machine, per row: a careless UPDATE from the sqlite3 shell is refused.
    -- (Written with = and OR, not IN (...): SQLite builds a temporary table for an IN
    -- list of three or more values every time a CHECK is evaluated.)
    CHECK ((state = 'running') = (owner IS NOT NULL)),
    CHECK ((state = 'queued' OR state = 'running') = (finished_at IS NULL)),
    CHECK ((state <> 'running' AND state <> 'succeeded') OR attempts >= 1),
    CHECK (state = 'succeeded' OR result IS NULL)
);

-- The claim reads this index in order: it holds only ready-or-waiting rows, so a
-- table full of finished tasks does not slow the claim down.
CREATE INDEX tasks_queued ON tasks (priority DESC, run_at, id) WHERE state = 'queued';
-- Recovery finds a dead worker's tasks here.
CREATE INDEX tasks_running ON tasks (owner) WHERE state = 'running';
-- Live stop sentinels, read by every claim.
CREATE INDEX tasks_stop_sentinels ON tasks (id) WHERE kind = 'taskq.stop' AND state = 'queued';
-- No index on (state, queue): it would cost a page write on every insert and
-- state change; `taskq status` and `list --state` scan instead.

-- Which state changes are legal. The CHECKs above hold each row together; this
-- trigger holds the transitions (a finished task is only ever re-queued by retry).
CREATE TRIGGER tasks_state_machine BEFORE UPDATE OF state ON tasks
WHEN NOT (
       OLD.state = NEW.state
    OR (OLD.state = 'queued'  AND (NEW.state = 'running' OR NEW.state = 'cancelled'))
    OR (OLD.state = 'queued'  AND NEW.state = 'succeeded' AND OLD.kind = 'taskq.stop')
    OR  OLD.state = 'running' -- to queued, succeeded, failed or cancelled (the CHECKs hold each row together)
    OR ((OLD.state = 'failed' OR OLD.state = 'cancelled') AND NEW.state = 'queued')
)
BEGIN
    SELECT RAISE(ABORT, 'taskq: illegal task state change (allowed: queued->running|cancelled, a stop sentinel queued->succeeded, running->queued|succeeded|failed|cancelled, failed|cancelled->queued)');
END;

-- Supervisors and workers that are alive, or were when they last wrote. A row is
-- deleted when its process exits, or when another process finds it dead (its pid
-- is gone on this host, or expires_at has passed) and has recovered its tasks.
CREATE TABLE processes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- the owner id tasks refer to; unlike a pid, never reused
    role          TEXT    NOT NULL CHECK (role IN ('supervisor', 'worker')),
    supervisor_id INTEGER,                           -- a worker's supervisor (processes.id)
    pid           INTEGER NOT NULL,
    host          TEXT    NOT NULL,
    boot_id       TEXT    NOT NULL DEFAULT '',       -- /proc/sys/kernel/random/boot_id: a reboot kills every pid
    start_ticks   INTEGER NOT NULL DEFAULT 0,        -- /proc/PID/stat start time: tells a reused pid apart
    queues        TEXT,                              -- JSON array of queues served; NULL = all
    kinds         TEXT,                              -- JSON array of kinds handled
    started_at    TEXT    NOT NULL,
    heartbeat_at  TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,                  -- heartbeat_at + lease: past it, presumed dead
    CHECK ((role = 'worker') = (supervisor_id IS NOT NULL))
);
