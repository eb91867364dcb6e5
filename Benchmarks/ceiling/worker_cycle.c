/* A taskq worker's transactions without taskq around them: what SQLite itself
 * spends per claimed-and-finished task (the ceiling for W2's work per task).
 *
 *   worker_cycle DB N        (DB: a copy of one made by `taskq init` and filled with
 *                             at least N queued `bench-noop` tasks; prints "done N")
 *
 * Per BEGIN IMMEDIATE transaction, as a worker draining a deep queue: finish the
 * previous batch, SELECT up to 512 ready tasks in claim order, mark them running.
 * The statements are taskq's (Sources/TaskQueueSQLite/SQLiteTaskStore.swift);
 * CHECKs and triggers off, as on taskq's worker connections. taskq's way, the
 * default: the batch finished by one UPDATE over its id range that reads each
 * row's attempt and result from the batch (Sources/CSQLiteTuning/outcomes.c), and
 * a run of consecutive ids marked by its range. With ONE_BY_ONE set in the
 * environment, the way before: one fenced UPDATE per finished task, and the mark
 * by `id IN (SELECT value FROM json_each(?))`. Measure with callgrind, the
 * difference of two sizes divided by their difference in tasks:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null ./worker_cycle copy.db 5120
 *
 * Built against the system's SQLite (cc -I Sources/CSQLite/include
 * -I Sources/CSQLiteTuning/include worker_cycle.c Sources/CSQLiteTuning/outcomes.c
 * -lsqlite3) and against the bundled one (the same with -I Sources/CSQLiteBundled/include,
 * and csqlite.o from cc -c -DTASKQ_BUNDLED_SQLITE Sources/CSQLiteBundled/csqlite.c
 * instead of -lsqlite3, plus -lm), the one-by-one cycle gave 35.7k
 * and 29.6k instructions per task with the workers' 4 MiB page cache (35.7k and
 * 29.2k with the 32 MiB they had before; Sources/CSQLite/README.md); 30.0k on
 * taskq's with schema 6's two-part claim. On 2026-11-27, this program: 30.8k one by
 * one, 28.4k with the range mark alone, 23.9k with the range finish too. */
#include <sqlite3.h>
#include "CSQLiteTuning.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *now = "2026-11-27T03:00:00.123Z";
/* The claim's two halves (migrations/0006): the due tasks with a start time (none
 * here: one probe), then the ready ones. */
#define CLAIM_SQL(COLUMNS, INDEX, RANGE, ORDER) \
    "SELECT id, kind, queue, payload, attempts, max_attempts, timeout_s, on_crash, backoff_base_s, backoff_cap_s, " COLUMNS " " \
    "FROM tasks INDEXED BY " INDEX " " \
    "WHERE state = 'queued' AND " RANGE " " \
    "AND id <= coalesce((SELECT min(id) - 1 FROM tasks INDEXED BY tasks_stop_sentinels " \
    "WHERE kind = 'taskq.stop' AND state = 'queued' AND json_extract(payload, '$.supervisor') = ?2), 9223372036854775807) " \
    "AND (kind = ?4) " \
    "AND (NOT EXISTS (SELECT 1 FROM queues WHERE paused_at IS NOT NULL) " \
    "OR queue NOT IN (SELECT name FROM queues WHERE paused_at IS NOT NULL)) " \
    "ORDER BY " ORDER " LIMIT ?3"
static const char *due_sql = CLAIM_SQL("priority, run_at", "tasks_delayed", "run_at > '' AND run_at <= ?1", "priority DESC, run_at, id");
static const char *claim_sql = CLAIM_SQL("priority, created_at", "tasks_ready", "run_at = ''", "priority DESC, id");
static const char *mark_sql =
    "UPDATE tasks SET state = 'running', owner = ?1, attempts = attempts + 1, started_at = ?2, "
    "worker_pid = ?3, worker_host = ?4 WHERE id IN (SELECT value FROM json_each(?5))";
static const char *mark_range_sql =
    "UPDATE tasks SET state = 'running', owner = ?1, attempts = attempts + 1, started_at = ?2, "
    "worker_pid = ?3, worker_host = ?4 WHERE id BETWEEN ?5 AND ?6 AND state = 'queued'";
static const char *finish_range_sql =
    "UPDATE tasks SET state = 'succeeded', owner = NULL, finished_at = ?1, result = taskq_outcome_result(id) "
    "WHERE id BETWEEN ?2 AND ?3 AND owner = ?4 AND attempts = taskq_outcome_attempt(id) "
    "AND state = 'running' AND has_dependants IS NULL";
static const char *finish_sql =
    "UPDATE tasks SET state = 'succeeded', owner = NULL, finished_at = ?1, result = ?2 "
    "WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running' AND has_dependants IS NULL";
/* What the bench handler returns: its audit line. */
static const char *result = "{\"seq\":12345,\"pid\":4242,\"enq_ns\":1234567890123456789,\"start_ns\":1234567890123456789}";

static void fail(sqlite3 *db, const char *what) { fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db)); exit(1); }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: worker_cycle DB N\n"); return 64; }
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db)) fail(db, "open");
    long n = atol(argv[2]);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA ignore_check_constraints=1;"
                     "PRAGMA cache_size=-4096; PRAGMA temp_store=MEMORY", 0, 0, 0);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)0);
    sqlite3_stmt *due, *claim, *mark, *finish, *mark_range, *finish_range;
    int one_by_one = getenv("ONE_BY_ONE") != NULL;
    taskq_outcomes *outcomes = taskq_outcomes_register(db);
    if (!outcomes) fail(db, "taskq_outcomes_register");
    if (sqlite3_prepare_v3(db, mark_range_sql, -1, SQLITE_PREPARE_PERSISTENT, &mark_range, 0)) fail(db, "mark range");
    if (sqlite3_prepare_v3(db, finish_range_sql, -1, SQLITE_PREPARE_PERSISTENT, &finish_range, 0)) fail(db, "finish range");
    if (sqlite3_prepare_v3(db, due_sql, -1, SQLITE_PREPARE_PERSISTENT, &due, 0)) fail(db, "due");
    if (sqlite3_prepare_v3(db, claim_sql, -1, SQLITE_PREPARE_PERSISTENT, &claim, 0)) fail(db, "claim");
    if (sqlite3_prepare_v3(db, mark_sql, -1, SQLITE_PREPARE_PERSISTENT, &mark, 0)) fail(db, "mark");
    if (sqlite3_prepare_v3(db, finish_sql, -1, SQLITE_PREPARE_PERSISTENT, &finish, 0)) fail(db, "finish");
    static long ids[512], attempt[512];
    static char list[512 * 21 + 2];
    int have = 0;
    long done = 0;
    for (;;) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0);
        if (!one_by_one && have > 1) {
            long lo = ids[0], hi = ids[0];
            for (int k = 1; k < have; k++) { if (ids[k] < lo) lo = ids[k]; if (ids[k] > hi) hi = ids[k]; }
            if (taskq_outcomes_begin(outcomes, lo, (int)(hi - lo + 1))) fail(db, "begin");
            for (int k = 0; k < have; k++)
                if (taskq_outcomes_add(outcomes, ids[k], attempt[k], result, strlen(result), 1)) fail(db, "add");
            sqlite3_bind_text(finish_range, 1, now, 24, SQLITE_STATIC);
            sqlite3_bind_int64(finish_range, 2, lo);
            sqlite3_bind_int64(finish_range, 3, hi);
            sqlite3_bind_int64(finish_range, 4, 7);
            if (sqlite3_step(finish_range) != SQLITE_DONE) fail(db, "finish range");
            if (sqlite3_changes(db) != have) { fprintf(stderr, "finish range changed %d of %d\n", sqlite3_changes(db), have); return 1; }
            sqlite3_reset(finish_range);
            done += have;
            have = 0;
        }
        for (int k = 0; k < have; k++) {
            sqlite3_bind_text(finish, 1, now, 24, SQLITE_STATIC);
            sqlite3_bind_text(finish, 2, result, (int)strlen(result), SQLITE_STATIC);
            sqlite3_bind_int64(finish, 3, ids[k]);
            sqlite3_bind_int64(finish, 4, 7);
            sqlite3_bind_int64(finish, 5, attempt[k]);
            if (sqlite3_step(finish) != SQLITE_DONE) fail(db, "finish");
            if (sqlite3_changes(db) != 1) { fprintf(stderr, "finish changed nothing\n"); return 1; }
            sqlite3_reset(finish);
            done++;
        }
        have = 0;
        if (done < n) {
            sqlite3_bind_text(due, 1, now, 24, SQLITE_STATIC);
            sqlite3_bind_text(due, 2, "5", 1, SQLITE_STATIC);
            sqlite3_bind_int64(due, 3, 512);
            sqlite3_bind_text(due, 4, "bench-noop", 10, SQLITE_STATIC);
            if (sqlite3_step(due) != SQLITE_DONE) fail(db, "due: expected no due task");
            sqlite3_reset(due);
            sqlite3_bind_text(claim, 1, now, 24, SQLITE_STATIC);
            sqlite3_bind_text(claim, 2, "5", 1, SQLITE_STATIC);
            sqlite3_bind_int64(claim, 3, 512);
            sqlite3_bind_text(claim, 4, "bench-noop", 10, SQLITE_STATIC);
            while (sqlite3_step(claim) == SQLITE_ROW) {
                ids[have] = sqlite3_column_int64(claim, 0);
                for (int c = 1; c <= 3; c++) (void)sqlite3_column_text(claim, c);
                attempt[have] = sqlite3_column_int64(claim, 4) + 1;
                have++;
            }
            sqlite3_reset(claim);
            if (!one_by_one && have > 0 && ids[have - 1] - ids[0] == have - 1) {
                sqlite3_bind_int64(mark_range, 1, 7);
                sqlite3_bind_text(mark_range, 2, now, 24, SQLITE_STATIC);
                sqlite3_bind_int64(mark_range, 3, 4242);
                sqlite3_bind_text(mark_range, 4, "host", 4, SQLITE_STATIC);
                sqlite3_bind_int64(mark_range, 5, ids[0]);
                sqlite3_bind_int64(mark_range, 6, ids[have - 1]);
                if (sqlite3_step(mark_range) != SQLITE_DONE) fail(db, "mark range");
                if (sqlite3_changes(db) != have) fail(db, "mark range: changed too few");
                sqlite3_reset(mark_range);
            } else {
                int len = 0;
                list[len++] = '[';
                for (int k = 0; k < have; k++) len += sprintf(list + len, "%s%ld", k ? "," : "", ids[k]);
                list[len++] = ']';
                sqlite3_bind_int64(mark, 1, 7);
                sqlite3_bind_text(mark, 2, now, 24, SQLITE_STATIC);
                sqlite3_bind_int64(mark, 3, 4242);
                sqlite3_bind_text(mark, 4, "host", 4, SQLITE_STATIC);
                sqlite3_bind_text(mark, 5, list, len, SQLITE_STATIC);
                if (sqlite3_step(mark) != SQLITE_DONE) fail(db, "mark");
                sqlite3_reset(mark);
            }
        }
        sqlite3_exec(db, "COMMIT", 0, 0, 0);
        if (have == 0) break;
    }
    fprintf(stderr, "done %ld\n", done);
    return 0;
}
