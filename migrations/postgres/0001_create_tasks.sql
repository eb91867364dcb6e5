-- taskq schema on PostgreSQL, version 1.
-- The PostgreSQL migrations carry the same version numbers as the SQLite ones
-- (migrations/*.sql), so one number names one schema on either engine. This store
-- was first written against SQLite's version 6: versions 1 to 5 only create the
-- migrations table (here) or do nothing, and 0006 creates the schema as of then.
-- The taskq binary carries these files (SwiftPM embeds them at build time) and
-- applies each in its own transaction under an advisory lock.

-- Which migrations this database (schema) has had.
CREATE TABLE taskq_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL
);
