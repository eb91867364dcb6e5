-- taskq schema on PostgreSQL, version 3: nothing to do. SQLite's version 3
-- (migrations/0003_schedules.sql) is part of what 0006 creates here.
SELECT 1;
