-- taskq schema on PostgreSQL, version 4: nothing to do. SQLite's version 4
-- (migrations/0004_retry_policy.sql) is part of what 0006 creates here.
SELECT 1;
