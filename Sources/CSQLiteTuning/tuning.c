#include "CSQLiteTuning.h"
#include "CSQLite.h"

int taskq_sqlite_tune(void) {
    static int done = 0, rc = 0;
    if (done) return rc;
    done = 1;
    /* The bundled SQLite is compiled this way (SQLITE_THREADSAFE=2,
       SQLITE_DEFAULT_MEMSTATUS=0); a system library (Debian's: serialized, memory
       statistics on) is switched to it here. */
    rc = sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    if (rc == SQLITE_OK) rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* Debian's SQLite is compiled with SQLITE_USE_URI=1: it would read a database
       path such as "file:q.db" as a URI, naming ./q.db. Paths are file names here;
       taskq asks for a URI itself where it means one (SQLITE_OPEN_URI). */
    if (rc == SQLITE_OK) rc = sqlite3_config(SQLITE_CONFIG_URI, 0);
    return rc;
}

#include <sched.h>
#include <stdlib.h>
#include <time.h>

struct busy_state { int timeout_ms; struct timespec start; };

static double elapsed_ms(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) * 1e3 + (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static int busy_handler(void *arg, int count) {
    struct busy_state *st = arg;
    if (count == 0) clock_gettime(CLOCK_MONOTONIC, &st->start);
    else if (elapsed_ms(&st->start) >= st->timeout_ms) return 0; /* give up: SQLITE_BUSY */
    if (count < 3) { sched_yield(); return 1; }
    long us = 20L << (count - 3 < 7 ? count - 3 : 7); /* 20 µs .. 2.56 ms */
    if (us > 2000) us = 2000;
    struct timespec ts = { 0, us * 1000L };
    nanosleep(&ts, NULL);
    return 1;
}

int taskq_sqlite_busy_handler(sqlite3 *db, int timeout_ms) {
    /* One small allocation per connection, kept for its life (connections are few). */
    struct busy_state *st = calloc(1, sizeof *st);
    if (!st) return SQLITE_NOMEM;
    st->timeout_ms = timeout_ms;
    return sqlite3_busy_handler(db, busy_handler, st);
}

int taskq_sqlite_disable_triggers(sqlite3 *db) {
    int now = -1;
    return sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &now);
}
