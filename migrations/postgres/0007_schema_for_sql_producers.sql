-- taskq schema on PostgreSQL, version 7 (as migrations/0007 on SQLite): the tasks
-- table is an interface. A plain
--   INSERT INTO tasks (kind, payload) VALUES ('resize', '{"file":"a.png"}');
-- from psql or any PostgreSQL driver enqueues a task with the defaults `taskq
-- enqueue` gives it, and a bad row is refused with a message.
--
-- What SQLite's 0007 does that is not needed here:
-- * task_id_high_water: ids come from an identity sequence, which never gives an
--   id out twice, even after purge deleted the newest tasks.
-- * Rebuilding tasks and processes: PostgreSQL keeps no CREATE TABLE text, and
--   ALTER TABLE changes the table in place.
-- * "priority must be an integer": the column is bigint.
--
-- The named CHECKs are added NOT VALID: rows already in the table are kept as they
-- are (SQLite's migrations run with CHECKs off for the same reason), new and
-- updated rows are checked. PostgreSQL's names are at most 63 bytes, so two are
-- shorter than SQLite's.

ALTER TABLE tasks
    DROP CONSTRAINT IF EXISTS tasks_kind_check,
    DROP CONSTRAINT IF EXISTS tasks_queue_check,
    DROP CONSTRAINT IF EXISTS tasks_max_attempts_check,
    DROP CONSTRAINT IF EXISTS tasks_timeout_s_check,
    ADD CONSTRAINT "kind must be 1 to 200 [A-Za-z0-9._:-], not starting with '-'"
        CHECK (length(kind) BETWEEN 1 AND 200 AND kind !~ '[^0-9A-Za-z._:-]' AND kind !~ '^-') NOT VALID,
    ADD CONSTRAINT "queue must be 1 to 200 [A-Za-z0-9._:-], not starting with '-'"
        CHECK (length(queue) BETWEEN 1 AND 200 AND queue !~ '[^0-9A-Za-z._:-]' AND queue !~ '^-') NOT VALID,
    -- The cast validates the JSON without building it (json, not jsonb): invalid
    -- JSON is refused by the cast itself ("invalid input syntax for type json", with
    -- the offending token), before the CHECK's name is reached; PostgreSQL 15 has no
    -- test that says false instead (16's IS JSON).
    ADD CONSTRAINT "payload must be valid JSON of at most 1 MiB"
        CHECK (octet_length(payload) <= 1048576 AND payload::json IS NOT NULL) NOT VALID,
    ADD CONSTRAINT "max_attempts must be between 1 and 1000000"
        CHECK (max_attempts BETWEEN 1 AND 1000000) NOT VALID,
    ADD CONSTRAINT "timeout_s must be more than 0 and at most 31536000 (a year)"
        CHECK (timeout_s IS NULL OR (timeout_s > 0 AND timeout_s <= 31536000)) NOT VALID,
    ADD CONSTRAINT "unique_key must be 1 to 1000 bytes"
        CHECK (unique_key IS NULL OR octet_length(unique_key) BETWEEN 1 AND 1000) NOT VALID,
    -- The end of a succeeded command handler's stderr (last 2 KiB); NULL: none.
    ADD COLUMN stderr text;

-- Left out: the kind's (taskq kind set), else 3, from tasks_insert_defaults below.
-- Still NOT NULL: the trigger fills it in before the row is checked.
ALTER TABLE tasks ALTER COLUMN max_attempts DROP DEFAULT;
-- Ready now (run_at NULL), queue 'default', priority 0 and payload 'null' were
-- already the columns' defaults; created_at, to the millisecond as taskq writes it.
ALTER TABLE tasks ALTER COLUMN created_at SET DEFAULT date_trunc('milliseconds', statement_timestamp());

-- A row inserted by anybody but taskq: kinds starting with 'taskq.' are taskq's
-- own, and each retry-policy column left NULL comes from its kind's row in `kinds`
-- (a backoff half the row sets wins over the kind's other half, as in
-- EnqueueOptions.storedPolicy), max_attempts 3 when neither says.
CREATE FUNCTION tasks_insert_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k kinds%ROWTYPE;
BEGIN
    IF starts_with(NEW.kind, 'taskq.') THEN
        RAISE EXCEPTION 'taskq: kinds starting with ''taskq.'' are reserved for taskq itself (taskq stop writes taskq.stop rows)'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.max_attempts IS NULL OR NEW.backoff_base_s IS NULL OR NEW.backoff_cap_s IS NULL OR NEW.on_crash IS NULL THEN
        SELECT * INTO k FROM kinds WHERE kind = NEW.kind;   -- all NULL when the kind has no row
        NEW.max_attempts := coalesce(NEW.max_attempts, k.max_attempts, 3);
        NEW.on_crash := coalesce(NEW.on_crash, k.on_crash);
        IF NEW.backoff_base_s IS NULL AND NEW.backoff_cap_s IS NULL THEN
            NEW.backoff_base_s := k.backoff_base_s;
            NEW.backoff_cap_s := k.backoff_cap_s;
        ELSIF NEW.backoff_base_s IS NULL THEN
            NEW.backoff_base_s := CASE WHEN k.backoff_base_s IS NOT NULL THEN least(k.backoff_base_s, NEW.backoff_cap_s) END;
        ELSIF NEW.backoff_cap_s IS NULL THEN
            NEW.backoff_cap_s := CASE WHEN k.backoff_cap_s IS NOT NULL THEN greatest(k.backoff_cap_s, NEW.backoff_base_s) END;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
-- taskq's own connections set taskq.writer = 'taskq' (PostgresTaskStore.init):
-- they resolve the kind's policy themselves and write every column, and write the
-- taskq.stop rows. The WHEN clause is evaluated without calling the function, so
-- their inserts cost one setting lookup per row, not a PL/pgSQL call and a read of
-- kinds. Measured (PostgreSQL 15, 100,000 rows in one INSERT, best of 6): 1.0 s
-- with the function called, 0.63 s with the WHEN false, as with no trigger at all.
-- (session_replication_role, which turns triggers off, needs a superuser.)
CREATE TRIGGER tasks_insert_defaults BEFORE INSERT ON tasks
FOR EACH ROW WHEN (current_setting('taskq.writer', true) IS DISTINCT FROM 'taskq')
EXECUTE FUNCTION tasks_insert_defaults();

-- Every attempt of every task: SELECT * FROM attempts WHERE task_id = 17 ORDER BY started_at;
-- outcome 'running' or 'succeeded' comes from the tasks row. stderr: a succeeded
-- attempt's from tasks.stderr; a failed or timed-out one's is the end of its error,
-- after '; stderr: ' (newlines shown as ' ⏎ ' there).
DROP VIEW IF EXISTS attempts;
CREATE VIEW attempts AS
    SELECT task_id, attempt, started_at, finished_at, worker_pid, worker_host, outcome, error,
           CASE WHEN strpos(error, '; stderr: ') > 0 THEN substr(error, strpos(error, '; stderr: ') + 10) END AS stderr
    FROM task_attempts
    UNION ALL
    SELECT id, attempts, started_at, CASE WHEN state = 'succeeded' THEN finished_at END, worker_pid, worker_host, state, NULL, stderr
    FROM tasks WHERE state IN ('running', 'succeeded') AND kind <> 'taskq.stop';
