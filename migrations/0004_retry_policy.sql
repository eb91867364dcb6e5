-- taskq schema, version 4: retry policy per task and per kind.
--
-- Where a task's policy comes from, first match wins:
--   1. its own enqueue options (--max-attempts, --backoff-base, --backoff-cap, --on-crash);
--   2. its kind's row in `kinds` (taskq kind set KIND ...), copied into the task
--      row when it is enqueued, so a row always shows the policy it runs under;
--   3. the supervisor's flags (--backoff-base/--backoff-cap, --on-crash KIND=...)
--      for what is still NULL in the row;
--   4. built in: 3 attempts, backoff 1 s doubling up to 300 s, retry after a crash.

-- Exponential backoff of this task: attempt n waits base·2^(n-1) seconds, at most
-- cap, times a random factor in [0.5, 1]. NULL: the supervisor's setting.
ALTER TABLE tasks ADD COLUMN backoff_base_s REAL CHECK (backoff_base_s IS NULL OR backoff_base_s >= 0);
ALTER TABLE tasks ADD COLUMN backoff_cap_s  REAL CHECK (backoff_cap_s IS NULL OR backoff_cap_s >= 0);

-- Per-kind defaults (taskq kind set / list / remove). NULL: not set for this kind.
-- A change applies to tasks enqueued afterwards; queued tasks keep what they have.
CREATE TABLE kinds (
    kind           TEXT    PRIMARY KEY CHECK (length(kind) BETWEEN 1 AND 200),
    max_attempts   INTEGER CHECK (max_attempts IS NULL OR max_attempts BETWEEN 1 AND 1000000),
    backoff_base_s REAL    CHECK (backoff_base_s IS NULL OR backoff_base_s >= 0),
    backoff_cap_s  REAL    CHECK (backoff_cap_s IS NULL OR backoff_cap_s >= 0),
    on_crash       TEXT    CHECK (on_crash IS NULL OR on_crash = 'retry' OR on_crash = 'fail'),
    updated_at     TEXT    NOT NULL
) WITHOUT ROWID;

-- Schedules carry the same task options as enqueue; max_attempts becomes nullable
-- (NULL: the kind's setting, else 3), so the table is rebuilt. The old table is
-- renamed away first and the new one created under its own name: a table renamed
-- to `schedules` would be stored as CREATE TABLE "schedules", which the sqlite3
-- shell's .schema shows as CREATE TABLE IF NOT EXISTS "schedules". (Legacy rename:
-- views and triggers that read schedules are left reading it by name.)
PRAGMA legacy_alter_table = ON;
ALTER TABLE schedules RENAME TO schedules_v3;
PRAGMA legacy_alter_table = OFF;
CREATE TABLE schedules (
    name           TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    cron           TEXT    NOT NULL,                  -- 5-field cron or @hourly-style shortcut, as given
    tz             TEXT    NOT NULL DEFAULT 'UTC',    -- IANA zone the cron fields are read in
    kind           TEXT    NOT NULL CHECK (length(kind) BETWEEN 1 AND 200),
    payload        TEXT    NOT NULL DEFAULT 'null',   -- JSON, copied into each task
    queue          TEXT    NOT NULL DEFAULT 'default',
    priority       INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER CHECK (max_attempts IS NULL OR max_attempts >= 1),  -- NULL: the kind's, else 3
    timeout_s      REAL    CHECK (timeout_s IS NULL OR timeout_s > 0),
    created_at     TEXT    NOT NULL,
    next_at        TEXT    NOT NULL,                  -- the next occurrence to enqueue
    last_at        TEXT,                              -- the latest occurrence enqueued
    last_task_id   INTEGER,                           -- the task enqueued for it
    on_crash       TEXT    CHECK (on_crash IS NULL OR on_crash = 'retry' OR on_crash = 'fail'),
    backoff_base_s REAL    CHECK (backoff_base_s IS NULL OR backoff_base_s >= 0),
    backoff_cap_s  REAL    CHECK (backoff_cap_s IS NULL OR backoff_cap_s >= 0)
);
INSERT INTO schedules (name, cron, tz, kind, payload, queue, priority, max_attempts, timeout_s, created_at, next_at, last_at, last_task_id)
    SELECT name, cron, tz, kind, payload, queue, priority, max_attempts, timeout_s, created_at, next_at, last_at, last_task_id
    FROM schedules_v3;
DROP TABLE schedules_v3;
