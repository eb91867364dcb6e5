-- taskq schema on PostgreSQL, version 8: the CHECKs of single columns of tasks move
-- from the table to the columns' types (domains), with the same names and the
-- same conditions, so a bad row is refused as before:
--   ERROR:  value for domain tasks_kind violates check constraint "kind must be ..."
-- The four CHECKs that tie columns together (state, owner, finished_at, attempts,
-- result) stay on the table.
--
-- Why: PostgreSQL 15 reads a table's CHECK expressions from their stored text and
-- plans them again for every INSERT and UPDATE statement (ExecRelCheck), which
-- took a quarter of the server's time for a one-row INSERT into tasks, about as
-- much as the commit's fsync. A domain's CHECKs are read and planned once per
-- connection (the type cache), so the same conditions cost only their evaluation.
-- Measured with Benchmarks/pg_schema_ceiling.sh (docs/performance.md).
--
-- Each domain is first made without its CHECK, so changing the column's type
-- neither rewrites nor scans the table; the CHECK is then added NOT VALID, as the
-- table's were: rows already stored are kept as they are, new and changed values
-- are checked.
--
-- SQLite's 0008 changes nothing: SQLite keeps its CHECKs compiled with the table.

-- PostgreSQL will not change the type of a column a view or a trigger's WHEN reads.
-- The views that read tasks (taskq's `attempts`, yours, and views that read those)
-- are kept: each one's definition, owner, privileges and comment are saved, the
-- views dropped, and made again once the columns have their new types; so are the
-- triggers on tasks with a WHEN (tasks_state_machine, and yours). A materialized view is not dropped (it holds
-- data): the migration stops, changing nothing, and says which one to drop first.
CREATE TEMP TABLE taskq_0008_views ON COMMIT DROP AS
WITH RECURSIVE reads(oid, depth) AS (
    SELECT DISTINCT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid = 'tasks'::regclass AND r.ev_class <> 'tasks'::regclass
    UNION
    SELECT r.ev_class, reads.depth + 1 FROM reads JOIN pg_depend d ON d.refobjid = reads.oid
    JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND r.ev_class <> reads.oid
)
SELECT format('%I.%I', (SELECT nspname FROM pg_namespace WHERE oid = c.relnamespace), c.relname) AS name, c.relkind, max(reads.depth) AS depth, pg_get_viewdef(c.oid) AS definition,
       c.reloptions, pg_get_userbyid(c.relowner) AS owner, c.relacl, obj_description(c.oid, 'pg_class') AS comment
FROM reads JOIN pg_class c ON c.oid = reads.oid
GROUP BY c.oid;

DO $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT * FROM taskq_0008_views WHERE relkind <> 'v' LOOP
        RAISE EXCEPTION 'taskq schema version 8 changes the types of columns of tasks, and the materialized view % reads them: drop it, run taskq again, and create it again', v.name
            USING ERRCODE = 'object_in_use';
    END LOOP;
    FOR v IN SELECT * FROM taskq_0008_views ORDER BY depth DESC LOOP
        EXECUTE format('DROP VIEW IF EXISTS %s', v.name);
    END LOOP;
END $$;
CREATE TEMP TABLE taskq_0008_triggers ON COMMIT DROP AS
SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
WHERE tgrelid = 'tasks'::regclass AND NOT tgisinternal AND tgqual IS NOT NULL;
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM taskq_0008_triggers LOOP
        EXECUTE format('DROP TRIGGER %I ON tasks', t.tgname);
    END LOOP;
END $$;

CREATE DOMAIN tasks_kind AS text COLLATE "C";
CREATE DOMAIN tasks_queue AS text COLLATE "C";
CREATE DOMAIN tasks_state AS text;
CREATE DOMAIN tasks_payload AS text;
CREATE DOMAIN tasks_attempts AS bigint;
CREATE DOMAIN tasks_max_attempts AS bigint;
CREATE DOMAIN tasks_timeout_s AS double precision;
CREATE DOMAIN tasks_on_crash AS text;
CREATE DOMAIN tasks_unique_key AS text COLLATE "C";
CREATE DOMAIN tasks_backoff_base_s AS double precision;
CREATE DOMAIN tasks_backoff_cap_s AS double precision;

ALTER TABLE tasks
    DROP CONSTRAINT "kind must be 1 to 200 [A-Za-z0-9._:-], not starting with '-'",
    DROP CONSTRAINT "queue must be 1 to 200 [A-Za-z0-9._:-], not starting with '-'",
    DROP CONSTRAINT tasks_state_check,
    DROP CONSTRAINT "payload must be valid JSON of at most 1 MiB",
    DROP CONSTRAINT tasks_attempts_check,
    DROP CONSTRAINT "max_attempts must be between 1 and 1000000",
    DROP CONSTRAINT "timeout_s must be more than 0 and at most 31536000 (a year)",
    DROP CONSTRAINT tasks_on_crash_check,
    DROP CONSTRAINT "unique_key must be 1 to 1000 bytes",
    DROP CONSTRAINT tasks_backoff_base_s_check,
    DROP CONSTRAINT tasks_backoff_cap_s_check,
    ALTER COLUMN kind TYPE tasks_kind,
    ALTER COLUMN queue TYPE tasks_queue,
    ALTER COLUMN state TYPE tasks_state,
    ALTER COLUMN payload TYPE tasks_payload,
    ALTER COLUMN attempts TYPE tasks_attempts,
    ALTER COLUMN max_attempts TYPE tasks_max_attempts,
    ALTER COLUMN timeout_s TYPE tasks_timeout_s,
    ALTER COLUMN on_crash TYPE tasks_on_crash,
    ALTER COLUMN unique_key TYPE tasks_unique_key,
    ALTER COLUMN backoff_base_s TYPE tasks_backoff_base_s,
    ALTER COLUMN backoff_cap_s TYPE tasks_backoff_cap_s;

ALTER DOMAIN tasks_kind ADD CONSTRAINT "kind must be 1 to 200 [A-Za-z0-9._:-], not starting with '-'"
    CHECK (length(VALUE) BETWEEN 1 AND 200 AND VALUE !~ '[^0-9A-Za-z._:-]' AND VALUE !~ '^-') NOT VALID;
ALTER DOMAIN tasks_queue ADD CONSTRAINT "queue must be 1 to 200 [A-Za-z0-9._:-], not starting with '-'"
    CHECK (length(VALUE) BETWEEN 1 AND 200 AND VALUE !~ '[^0-9A-Za-z._:-]' AND VALUE !~ '^-') NOT VALID;
ALTER DOMAIN tasks_state ADD CONSTRAINT tasks_state_check
    CHECK (VALUE IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')) NOT VALID;
-- The cast validates the JSON without building it (see 0007).
ALTER DOMAIN tasks_payload ADD CONSTRAINT "payload must be valid JSON of at most 1 MiB"
    CHECK (octet_length(VALUE) <= 1048576 AND VALUE::json IS NOT NULL) NOT VALID;
ALTER DOMAIN tasks_attempts ADD CONSTRAINT tasks_attempts_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN tasks_max_attempts ADD CONSTRAINT "max_attempts must be between 1 and 1000000"
    CHECK (VALUE BETWEEN 1 AND 1000000) NOT VALID;
ALTER DOMAIN tasks_timeout_s ADD CONSTRAINT "timeout_s must be more than 0 and at most 31536000 (a year)"
    CHECK (VALUE IS NULL OR (VALUE > 0 AND VALUE <= 31536000)) NOT VALID;
ALTER DOMAIN tasks_on_crash ADD CONSTRAINT tasks_on_crash_check
    CHECK (VALUE IS NULL OR VALUE IN ('retry', 'fail')) NOT VALID;
ALTER DOMAIN tasks_unique_key ADD CONSTRAINT "unique_key must be 1 to 1000 bytes"
    CHECK (VALUE IS NULL OR octet_length(VALUE) BETWEEN 1 AND 1000) NOT VALID;
ALTER DOMAIN tasks_backoff_base_s ADD CONSTRAINT tasks_backoff_base_s_check
    CHECK (VALUE IS NULL OR VALUE >= 0) NOT VALID;
ALTER DOMAIN tasks_backoff_cap_s ADD CONSTRAINT tasks_backoff_cap_s_check
    CHECK (VALUE IS NULL OR VALUE >= 0) NOT VALID;

DO $$
DECLARE
    v record;
    g record;
BEGIN
    FOR v IN SELECT * FROM taskq_0008_triggers LOOP
        EXECUTE v.definition;
    END LOOP;
    FOR v IN SELECT * FROM taskq_0008_views ORDER BY depth LOOP
        EXECUTE format('CREATE VIEW %s%s AS %s', v.name,
                       CASE WHEN v.reloptions IS NOT NULL THEN format(' WITH (%s)', array_to_string(v.reloptions, ', ')) ELSE '' END,
                       v.definition);
        EXECUTE format('ALTER VIEW %s OWNER TO %I', v.name, v.owner);
        FOR g IN SELECT a.grantee, a.privilege_type, a.is_grantable FROM aclexplode(v.relacl) a LOOP
            EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, v.name,
                           CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                           CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        IF v.comment IS NOT NULL THEN
            EXECUTE format('COMMENT ON VIEW %s IS %L', v.name, v.comment);
        END IF;
    END LOOP;
END $$;
