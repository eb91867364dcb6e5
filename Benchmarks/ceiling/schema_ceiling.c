/* The most SQLite itself does with taskq's schema and taskq's insert statements,
 * without taskq around it: the ceiling for `taskq enqueue --lines`.
 *
 *   schema_ceiling DB N BATCH      (DB made by `taskq init`; BATCH 1–100 dividing N;
 *                                   prints "R rows/s")
 *
 * Like `taskq enqueue --lines --commit-every BATCH`: one BEGIN IMMEDIATE
 * transaction per BATCH rows; in it the kind's policy row is read once, and the
 * rows go in through the INSERT … VALUES taskq prepares, all BATCH in one statement. CHECKs and triggers off, as on taskq's enqueue connections. Payloads
 * are the harness's ~100-byte JSON. Used by schema_ceiling.sh. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void check(sqlite3 *db, int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "schema_ceiling: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: schema_ceiling DB N BATCH\n"); return 2; }
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) { fprintf(stderr, "cannot open %s\n", argv[1]); return 1; }
    int n = atoi(argv[2]), batch = atoi(argv[3]);
    if (batch < 1 || batch > 100 || n < 1 || n % batch) { fprintf(stderr, "BATCH must be 1-100 and divide N\n"); return 2; }
    check(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"
                               " PRAGMA ignore_check_constraints=1", 0, 0, 0), "pragmas");
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)0);

    /* The INSERT of SQLiteTaskStore.insertSQL: 12 parameters a row. */
    static char sql[100 * 64 + 512];
    int o = sprintf(sql, "INSERT INTO tasks (kind, queue, priority, payload, run_at, max_attempts, timeout_s,"
                         " created_at, on_crash, unique_key, backoff_base_s, backoff_cap_s) VALUES ");
    for (int r = 0; r < batch; r++) o += sprintf(sql + o, "%s(?,?,?,?,?,?,?,?,?,?,?,?)", r ? "," : "");
    sqlite3_stmt *ins, *kind, *begin, *commit;
    check(db, sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &ins, 0), "prepare insert");
    check(db, sqlite3_prepare_v2(db, "SELECT kind, max_attempts, backoff_base_s, backoff_cap_s, on_crash"
                                     " FROM kinds WHERE kind = ?1", -1, &kind, 0), "prepare kinds");
    check(db, sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, 0), "prepare begin");
    check(db, sqlite3_prepare_v2(db, "COMMIT", -1, &commit, 0), "prepare commit");

    static char payloads[100][160];
    const char *ts = "2026-11-26T12:00:00.000Z";
    double t0 = now();
    for (int i = 0; i < n; i += batch) {
        check(db, sqlite3_step(begin), "begin");
        sqlite3_reset(begin);
        sqlite3_bind_text(kind, 1, "bench-noop", -1, SQLITE_STATIC);
        while (sqlite3_step(kind) == SQLITE_ROW) {}
        sqlite3_reset(kind);
        for (int r = 0; r < batch; r++) {
            int p = r * 12, len = snprintf(payloads[r], sizeof payloads[r],
                "{\"seq\":%d,\"enq_ns\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", i + r);
            sqlite3_bind_text(ins, p + 1, "bench-noop", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, p + 2, "default", -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, p + 3, 0);
            sqlite3_bind_text(ins, p + 4, payloads[r], len, SQLITE_STATIC);
            sqlite3_bind_text(ins, p + 5, "", 0, SQLITE_STATIC);   /* run_at '': ready at once */
            sqlite3_bind_int64(ins, p + 6, 3);
            sqlite3_bind_text(ins, p + 8, ts, -1, SQLITE_STATIC);
        }
        check(db, sqlite3_step(ins), "insert");
        sqlite3_reset(ins);
        check(db, sqlite3_step(commit), "commit");
        sqlite3_reset(commit);
    }
    printf("%.0f rows/s\n", n / (now() - t0));
    sqlite3_close(db);
    return 0;
}
