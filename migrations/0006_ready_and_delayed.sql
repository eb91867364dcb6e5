-- taskq schema, version 6: a task that may run at once is enqueued with run_at ''
-- (the empty text), and the claim reads two small indexes instead of one wide one.
--
-- run_at '' means "ready since created_at". Any other run_at is a time: the task
-- is not claimed before it (--delay/--at, retry backoff, a released or recovered
-- task, one blocked behind --after in year 9999). '' sorts before every time, so
-- `run_at <= strftime('%Y-%m-%dT%H:%M:%fZ')` still picks every ready task from the
-- sqlite3 shell; taskq shows created_at for it (`taskq show`, `list --json`).
--
-- Why: tasks_queued was keyed (priority DESC, run_at, id), and run_at, 24 bytes of
-- text, was two thirds of each entry. Every enqueue wrote it into the index, and
-- every commit's index seek compared it. Measured in C on this schema with taskq's
-- statements (Benchmarks/ceiling), an insert cost 12% more at one task per commit
-- and 20% more in batches of 100 than with run_at out of the key.
--
-- The claim order is unchanged: priority (high first), then the time the task
-- became claimable (created_at for a ready task, run_at for the others), then id.
-- The claim takes the first LIMIT of each index in that order and merges them.
DROP INDEX tasks_queued;
-- Tasks that may run at once, in enqueue order within a priority.
CREATE INDEX tasks_ready ON tasks (priority DESC, id) WHERE state = 'queued' AND run_at = '';
-- Tasks with a start time, due or not: few, unless many are delayed or blocked.
CREATE INDEX tasks_delayed ON tasks (priority DESC, run_at, id) WHERE state = 'queued' AND run_at > '';
