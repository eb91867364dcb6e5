-- taskq schema, version 2: every attempt kept, on-crash policy, unique keys,
-- dependencies, paused queues.

-- Who ran the latest attempt: set by the claim UPDATE itself (no extra write).
-- Together with started_at, attempts and state they describe the running or
-- succeeded attempt; earlier attempts are rows of task_attempts.
ALTER TABLE tasks ADD COLUMN worker_pid INTEGER;
ALTER TABLE tasks ADD COLUMN worker_host TEXT;
-- What a crashed worker (killed, lost in a reboot, lease expired while stopped)
-- means for this task: 'retry' it, or end it 'failed'. NULL: the supervisor's
-- --on-crash for its kind, else retry.
ALTER TABLE tasks ADD COLUMN on_crash TEXT CHECK (on_crash IS NULL OR on_crash = 'retry' OR on_crash = 'fail');
-- 1 when some task was enqueued --after this one: only then does finishing it
-- look in task_dependencies (the finishing UPDATE has AND has_dependants IS NULL, and
-- a second variant runs only when that changed nothing), so a task without
-- dependants costs no extra statement.
ALTER TABLE tasks ADD COLUMN has_dependants INTEGER;
-- enqueue --unique KEY: at most one task per key is queued or running.
ALTER TABLE tasks ADD COLUMN unique_key TEXT;
CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key)
    WHERE unique_key IS NOT NULL AND (state = 'queued' OR state = 'running');

-- One row per attempt that did not succeed: written when an attempt fails, times
-- out, crashes, is released (shutdown: not counted) or is cancelled while running.
-- A successful attempt is never written here (it is the tasks row itself); the
-- view `attempts` below shows both.
CREATE TABLE task_attempts (
    id           INTEGER PRIMARY KEY,
    task_id      INTEGER NOT NULL,                   -- tasks.id (rows go when the task is purged)
    attempt      INTEGER NOT NULL,                   -- 1-based; 'released' attempts are not counted and reuse the number
    worker_pid   INTEGER,
    worker_host  TEXT,
    started_at   TEXT,
    finished_at  TEXT    NOT NULL,
    outcome      TEXT    NOT NULL CHECK (outcome = 'failed' OR outcome = 'timed out' OR outcome = 'crashed'
                                         OR outcome = 'released' OR outcome = 'cancelled'),
    error        TEXT
);
CREATE INDEX task_attempts_task ON task_attempts (task_id, id);

-- Every attempt of every task: SELECT * FROM attempts WHERE task_id = 17 ORDER BY started_at;
-- outcome 'running' or 'succeeded' comes from the tasks row.
CREATE VIEW attempts AS
    SELECT task_id, attempt, started_at, finished_at, worker_pid, worker_host, outcome, error FROM task_attempts
    UNION ALL
    SELECT id, attempts, started_at, CASE WHEN state = 'succeeded' THEN finished_at END, worker_pid, worker_host, state, NULL
    FROM tasks WHERE (state = 'running' OR state = 'succeeded') AND kind <> 'taskq.stop';

-- enqueue --after: task_id waits for depends_on to succeed. A row is deleted once
-- its dependency succeeded; a task with rows left is blocked (queued with run_at
-- '9999-12-31T23:59:59.999Z'), released by the transaction that finishes its last
-- dependency, and cancelled when one of them ends failed or cancelled.
CREATE TABLE task_dependencies (
    depends_on INTEGER NOT NULL,
    task_id    INTEGER NOT NULL,
    PRIMARY KEY (depends_on, task_id)
) WITHOUT ROWID;
CREATE INDEX task_dependencies_task ON task_dependencies (task_id);

-- Queues with a setting: paused_at set = no new claims (taskq pause / resume).
CREATE TABLE queues (
    name      TEXT PRIMARY KEY,
    paused_at TEXT
) WITHOUT ROWID;
