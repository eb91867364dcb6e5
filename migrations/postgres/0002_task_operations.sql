-- taskq schema on PostgreSQL, version 2: nothing to do. SQLite's version 2
-- (migrations/0002_task_operations.sql) is part of what 0006 creates here.
SELECT 1;
