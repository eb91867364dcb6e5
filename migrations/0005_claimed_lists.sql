-- taskq schema, version 5: a worker's claimed tasks listed on its processes row,
-- instead of an index on tasks.owner.

-- The ids of the tasks this process claimed and has not yet reported on, as a JSON
-- array ('[17,18,19]'), rewritten in the transaction that claims or finishes them.
-- Recovery reads it to find a dead worker's tasks, and takes each only if it is
-- still running and owned by that process (so a stale id is harmless).
-- NULL: the process registered before this migration, and its binary does not keep
-- the list; recovery scans the table for its tasks instead.
ALTER TABLE processes ADD COLUMN claimed TEXT DEFAULT '[]';
UPDATE processes SET claimed = NULL;
-- The index it replaces cost an index insert at every claim and a delete at every
-- finish (~6% of SQLite's work per task with workers draining a deep queue), and
-- its WHERE clause was evaluated at every insert; one small row rewrite per claimed
-- batch costs far less.
DROP INDEX tasks_running;
