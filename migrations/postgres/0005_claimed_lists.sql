-- taskq schema on PostgreSQL, version 5: nothing to do. SQLite's version 5
-- (migrations/0005_claimed_lists.sql) is part of what 0006 creates here.
SELECT 1;
