-- taskq schema, version 7: the tasks table is an interface. A plain
--   INSERT INTO tasks (kind, payload) VALUES ('resize', '{"file":"a.png"}');
-- from the sqlite3 shell or any SQLite driver enqueues a task with the defaults
-- `taskq enqueue` gives it, and a bad row is refused with a message. Ids are never
-- given out twice, even after `taskq purge` deleted the newest tasks.
--
-- tasks and processes are rebuilt (in the migration's one transaction): columns
-- added by ALTER TABLE in 0002, 0004 and 0005 were appended after another column's
-- comment, and `sqlite3 taskq.db .schema` showed them on one long line. Same
-- columns, in the same order (taskq reads some by position); every row, id, index,
-- trigger and view is kept. The old table is renamed away first and the new one
-- created under its own name: a table renamed to `tasks` would be stored as
-- CREATE TABLE "tasks", which .schema shows as CREATE TABLE IF NOT EXISTS "tasks".
--
-- taskq's own connections run with triggers off (SQLiteConnection.configure): they
-- write every column themselves, so the triggers below cost their inserts nothing.
-- (An INSERT trigger that fired for them, even with a WHEN that is false, would
-- cost each row a trigger call, and make every multi-row INSERT go through a
-- temporary table.) The triggers are for everybody else.

-- Ids: a new task's id is max(id) + 1 (no AUTOINCREMENT: it costs an extra page
-- write per insert statement). When purge deletes the newest tasks it writes the
-- highest id it deleted here, and new tasks are numbered above it: taskq reads this
-- table in its insert transactions (once per data version of the file, so a producer
-- that commits task after task reads it once), and a row inserted by anybody else
-- gets its id above it from the triggers below. At most one row; a mark that every id has
-- passed is stale and harmless, and purge deletes it.
CREATE TABLE task_id_high_water (
    one    INTEGER PRIMARY KEY CHECK (one = 1),
    max_id INTEGER NOT NULL                         -- the highest id purge deleted when nothing was above it
);

DROP VIEW IF EXISTS attempts;   -- refers to tasks: dropped for the rebuild, created again below

-- Legacy rename: a view of your own that reads tasks is left as it is (it reads the
-- new table by name) instead of being rewritten to read the old one. Indexes and
-- triggers of your own on tasks go with the old table; taskq creates them again
-- after its migrations.
PRAGMA legacy_alter_table = ON;
ALTER TABLE tasks RENAME TO tasks_v6;
PRAGMA legacy_alter_table = OFF;

CREATE TABLE tasks (
    id             INTEGER PRIMARY KEY,             -- above every id ever given out (task_id_high_water)
    kind           TEXT    NOT NULL
                   CONSTRAINT "kind must be 1 to 200 letters, digits, '.', '_', '-' or ':', not starting with '-'"
                   CHECK (length(kind) BETWEEN 1 AND 200 AND kind NOT GLOB '*[^0-9A-Za-z._:-]*' AND kind NOT GLOB '-*'),
    queue          TEXT    NOT NULL DEFAULT 'default'
                   CONSTRAINT "queue must be 1 to 200 letters, digits, '.', '_', '-' or ':', not starting with '-'"
                   CHECK (length(queue) BETWEEN 1 AND 200 AND queue NOT GLOB '*[^0-9A-Za-z._:-]*' AND queue NOT GLOB '-*'),
    state          TEXT    NOT NULL DEFAULT 'queued'
                   CHECK (state = 'queued' OR state = 'running' OR state = 'succeeded' OR state = 'failed' OR state = 'cancelled'),
    priority       INTEGER NOT NULL DEFAULT 0       -- higher runs first
                   CONSTRAINT "priority must be an integer" CHECK (typeof(priority) = 'integer'),
    payload        TEXT    NOT NULL DEFAULT 'null'  -- JSON, given to the handler on stdin
                   CONSTRAINT "payload must be valid JSON of at most 1 MiB"
                   CHECK (json_valid(payload) AND length(CAST(payload AS BLOB)) <= 1048576),
    run_at         TEXT    NOT NULL DEFAULT '',     -- not claimed before this time; '' = ready since created_at (0006)
    attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- attempts started, this one included
    max_attempts   INTEGER                          -- left out: the kind's (taskq kind set), else 3 (tasks_insert_defaults)
                   CONSTRAINT "max_attempts must be between 1 and 1000000" CHECK (max_attempts BETWEEN 1 AND 1000000),
    timeout_s      REAL                             -- per attempt; NULL = none
                   CONSTRAINT "timeout_s must be more than 0 and at most 31536000 (a year)"
                   CHECK (timeout_s IS NULL OR (timeout_s > 0 AND timeout_s <= 31536000)),
    owner          INTEGER,                         -- processes.id of the worker running it
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at     TEXT,                            -- start of the latest attempt
    finished_at    TEXT,
    result         BLOB,                            -- the handler's stdout, byte for byte (TEXT when it is UTF-8)
    last_error     TEXT,                            -- why the latest attempt failed, for people
    worker_pid     INTEGER,                         -- who ran the latest attempt (set by the claim itself)
    worker_host    TEXT,
    on_crash       TEXT    CHECK (on_crash IS NULL OR on_crash = 'retry' OR on_crash = 'fail'),  -- NULL: the kind's, else the supervisor's
    has_dependants INTEGER,                         -- 1 once some task was enqueued --after this one (0002)
    unique_key     TEXT                             -- enqueue --unique: at most one task per key is queued or running
                   CONSTRAINT "unique_key must be 1 to 1000 bytes" CHECK (unique_key IS NULL OR length(CAST(unique_key AS BLOB)) BETWEEN 1 AND 1000),
    backoff_base_s REAL    CHECK (backoff_base_s IS NULL OR backoff_base_s >= 0),  -- NULL: the kind's, else the supervisor's
    backoff_cap_s  REAL    CHECK (backoff_cap_s IS NULL OR backoff_cap_s >= 0),
    stderr         TEXT,                            -- end of a succeeded command handler's stderr (last 2 KiB); NULL: none
    -- The state machine, per row: a careless UPDATE from the sqlite3 shell is refused.
    -- (Written with = and OR, not IN (...): SQLite builds a temporary table for an IN
    -- list of three or more values every time a CHECK is evaluated.)
    CHECK ((state = 'running') = (owner IS NOT NULL)),
    CHECK ((state = 'queued' OR state = 'running') = (finished_at IS NULL)),
    CHECK ((state <> 'running' AND state <> 'succeeded') OR attempts >= 1),
    CHECK (state = 'succeeded' OR result IS NULL)
);
INSERT INTO tasks (id, kind, queue, state, priority, payload, run_at, attempts, max_attempts, timeout_s, owner,
                   created_at, started_at, finished_at, result, last_error, worker_pid, worker_host, on_crash,
                   has_dependants, unique_key, backoff_base_s, backoff_cap_s)
    SELECT id, kind, queue, state, priority, payload, run_at, attempts, max_attempts, timeout_s, owner,
           created_at, started_at, finished_at, result, last_error, worker_pid, worker_host, on_crash,
           has_dependants, unique_key, backoff_base_s, backoff_cap_s
    FROM tasks_v6 ORDER BY id;
DROP TABLE tasks_v6;     -- and with it its indexes and triggers, created again below

-- Tasks that may run at once, in enqueue order within a priority (0006).
CREATE INDEX tasks_ready ON tasks (priority DESC, id) WHERE state = 'queued' AND run_at = '';
-- Tasks with a start time, due or not: few, unless many are delayed or blocked.
CREATE INDEX tasks_delayed ON tasks (priority DESC, run_at, id) WHERE state = 'queued' AND run_at > '';
-- Live stop sentinels, read by every claim.
CREATE INDEX tasks_stop_sentinels ON tasks (id) WHERE kind = 'taskq.stop' AND state = 'queued';
-- enqueue --unique KEY: at most one task per key is queued or running.
CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key)
    WHERE unique_key IS NOT NULL AND (state = 'queued' OR state = 'running');

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

-- A row inserted by hand (sqlite3 shell, Python's sqlite3, any driver): kinds
-- starting with 'taskq.' are taskq's own; and after a purge deleted the newest
-- tasks, a placeholder row at the high-water id makes SQLite number the new row
-- above it (the row that follows deletes it), so the driver's last-insert id and
-- RETURNING are the row's own.
CREATE TRIGGER tasks_insert_checks BEFORE INSERT ON tasks
BEGIN
    SELECT RAISE(ABORT, 'taskq: kinds starting with ''taskq.'' are reserved for taskq itself (taskq stop writes taskq.stop rows)')
    WHERE NEW.kind GLOB 'taskq.*';
    INSERT INTO tasks (id, kind, queue, state, payload, run_at, max_attempts, created_at, finished_at)
        SELECT max_id, 'taskq.id', 'taskq', 'cancelled', 'null', '', 1, '', '' FROM task_id_high_water
        WHERE NEW.id = -1 AND max_id > coalesce((SELECT max(id) FROM tasks), 0);   -- -1: no id given
END;

-- ... and gets what `taskq enqueue` would have given it: each retry-policy column
-- left NULL from its kind's row in `kinds` (a backoff half the row sets wins over
-- the kind's other half, as in EnqueueOptions.storedPolicy), max_attempts 3 when
-- neither says. created_at, run_at '' (ready now), queue 'default', priority 0 and
-- payload 'null' are the columns' DEFAULTs.
CREATE TRIGGER tasks_insert_defaults AFTER INSERT ON tasks
WHEN NEW.kind <> 'taskq.id'   -- not for the placeholder, which the trigger above inserts
BEGIN
    DELETE FROM tasks WHERE kind = 'taskq.id' AND id = (SELECT max_id FROM task_id_high_water);
    UPDATE tasks SET
        max_attempts   = coalesce(NEW.max_attempts, (SELECT max_attempts FROM kinds WHERE kind = NEW.kind), 3),
        backoff_base_s = coalesce(NEW.backoff_base_s, (SELECT iif(NEW.backoff_cap_s IS NULL, backoff_base_s, min(backoff_base_s, NEW.backoff_cap_s))
                                                       FROM kinds WHERE kind = NEW.kind)),
        backoff_cap_s  = coalesce(NEW.backoff_cap_s, (SELECT iif(NEW.backoff_base_s IS NULL, backoff_cap_s, max(backoff_cap_s, NEW.backoff_base_s))
                                                      FROM kinds WHERE kind = NEW.kind)),
        on_crash       = coalesce(NEW.on_crash, (SELECT on_crash FROM kinds WHERE kind = NEW.kind))
    WHERE id = NEW.id
      AND (NEW.max_attempts IS NULL OR NEW.backoff_base_s IS NULL OR NEW.backoff_cap_s IS NULL OR NEW.on_crash IS NULL);
END;

-- max_attempts is NULL only while tasks_insert_defaults fills it in.
CREATE TRIGGER tasks_max_attempts_set BEFORE UPDATE OF max_attempts ON tasks
WHEN NEW.max_attempts IS NULL
BEGIN
    SELECT RAISE(ABORT, 'taskq: max_attempts must be between 1 and 1000000, not NULL');
END;

-- Every attempt of every task: SELECT * FROM attempts WHERE task_id = 17 ORDER BY started_at;
-- outcome 'running' or 'succeeded' comes from the tasks row. stderr: a succeeded
-- attempt's from tasks.stderr; a failed or timed-out one's is the end of its error,
-- after '; stderr: ' (newlines shown as ' ⏎ ' there).
CREATE VIEW attempts AS
    SELECT task_id, attempt, started_at, finished_at, worker_pid, worker_host, outcome, error,
           CASE WHEN instr(error, '; stderr: ') > 0 THEN substr(error, instr(error, '; stderr: ') + 10) END AS stderr
    FROM task_attempts
    UNION ALL
    SELECT id, attempts, started_at, CASE WHEN state = 'succeeded' THEN finished_at END, worker_pid, worker_host, state, NULL, stderr
    FROM tasks WHERE (state = 'running' OR state = 'succeeded') AND kind <> 'taskq.stop';

-- processes: rebuilt the same way, for the same reason (claimed, from 0005). Its
-- ids are AUTOINCREMENT (an owner id is never reused): the sequence is carried over.
PRAGMA legacy_alter_table = ON;
ALTER TABLE processes RENAME TO processes_v6;
PRAGMA legacy_alter_table = OFF;
CREATE TABLE processes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- the owner id tasks refer to; unlike a pid, never reused
    role          TEXT    NOT NULL CHECK (role IN ('supervisor', 'worker')),
    supervisor_id INTEGER,                           -- a worker's supervisor (processes.id)
    pid           INTEGER NOT NULL,
    host          TEXT    NOT NULL,
    boot_id       TEXT    NOT NULL DEFAULT '',       -- /proc/sys/kernel/random/boot_id, and the PID namespace in a container
    start_ticks   INTEGER NOT NULL DEFAULT 0,        -- /proc/PID/stat start time: tells a reused pid apart
    queues        TEXT,                              -- JSON array of queues served; NULL = all
    kinds         TEXT,                              -- JSON array of kinds handled
    started_at    TEXT    NOT NULL,
    heartbeat_at  TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,                  -- heartbeat_at + lease: past it, presumed dead
    claimed       TEXT    DEFAULT '[]',              -- JSON array of the ids it claimed and has not reported on (0005)
    CHECK ((role = 'worker') = (supervisor_id IS NOT NULL))
);
INSERT INTO processes (id, role, supervisor_id, pid, host, boot_id, start_ticks, queues, kinds, started_at,
                       heartbeat_at, expires_at, claimed)
    SELECT id, role, supervisor_id, pid, host, boot_id, start_ticks, queues, kinds, started_at,
           heartbeat_at, expires_at, claimed
    FROM processes_v6 ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'processes';
INSERT INTO sqlite_sequence (name, seq) SELECT 'processes', seq FROM sqlite_sequence WHERE name = 'processes_v6';
DROP TABLE processes_v6;
