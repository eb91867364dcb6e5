-- taskq schema, version 8: the stderr of a successful attempt.
-- A command handler's stdout is its result; the end of its stderr (the last 2 KiB,
-- "…" first when there was more; the same tail a failed attempt keeps in its error)
-- is kept beside it. NULL when the handler wrote nothing to stderr, and for Swift
-- handlers. Written only for tasks whose handler wrote some, so a quiet handler
-- costs no extra statement.
ALTER TABLE tasks ADD COLUMN stderr TEXT;

-- The view gains a stderr column for every attempt: a succeeded one's from the
-- column above; a failed or timed-out one's is the end of its error, after
-- '; stderr: ' (newlines shown as ' ⏎ ' there). Its other columns are as before.
DROP VIEW attempts;
CREATE VIEW attempts AS
    SELECT task_id, attempt, started_at, finished_at, worker_pid, worker_host, outcome, error,
           CASE WHEN instr(error, '; stderr: ') > 0 THEN substr(error, instr(error, '; stderr: ') + 10) END AS stderr
    FROM task_attempts
    UNION ALL
    SELECT id, attempts, started_at, CASE WHEN state = 'succeeded' THEN finished_at END, worker_pid, worker_host, state, NULL, stderr
    FROM tasks WHERE (state = 'running' OR state = 'succeeded') AND kind <> 'taskq.stop';
