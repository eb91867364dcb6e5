-- taskq schema, version 3: recurring
-- schedules and map groups. Times are UTC ISO 8601 text with milliseconds, as in 0001.

-- One row per recurring schedule ('taskq schedule add'). Every supervisor looks
-- here about once a second; the one that finds next_at passed enqueues the task and
-- advances next_at in the same BEGIN IMMEDIATE transaction, so each occurrence is
-- enqueued once however many supervisors share the database.
CREATE TABLE schedules (
    name         TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    cron         TEXT    NOT NULL,                  -- 5-field cron or @hourly-style shortcut, as given
    tz           TEXT    NOT NULL DEFAULT 'UTC',    -- IANA zone the cron fields are read in
    kind         TEXT    NOT NULL CHECK (length(kind) BETWEEN 1 AND 200),
    payload      TEXT    NOT NULL DEFAULT 'null',   -- JSON, copied into each task
    queue        TEXT    NOT NULL DEFAULT 'default',
    priority     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    timeout_s    REAL    CHECK (timeout_s IS NULL OR timeout_s > 0),
    created_at   TEXT    NOT NULL,
    next_at      TEXT    NOT NULL,                  -- the next occurrence to enqueue
    last_at      TEXT,                              -- the latest occurrence enqueued
    last_task_id INTEGER                            -- the task enqueued for it
);

-- One row per occurrence enqueued: the occurrence time is part of the key, so the
-- same occurrence can never be enqueued twice.
CREATE TABLE schedule_runs (
    schedule   TEXT    NOT NULL,                    -- schedules.name
    occurrence TEXT    NOT NULL,                    -- the cron time it stands for
    task_id    INTEGER NOT NULL,                    -- tasks.id
    created_at TEXT    NOT NULL,
    PRIMARY KEY (schedule, occurrence)
) WITHOUT ROWID;

-- 'taskq map' runs: which tasks belong to a named group, in input order.
CREATE TABLE task_groups (
    group_name TEXT    NOT NULL,
    position   INTEGER NOT NULL,                    -- input line number, from 1
    task_id    INTEGER NOT NULL,                    -- tasks.id
    PRIMARY KEY (group_name, position)
) WITHOUT ROWID;
