/*
 * A batch of successful outcomes, read by one UPDATE.
 *
 * A worker finishing 500 tasks ran 500 fenced UPDATEs, one per task: each a full
 * statement execution (cursors opened and closed, a seek from the root, the
 * statement's end). When their ids lie close together, as a claimed batch's do,
 * one UPDATE over the id range does the same work in one pass:
 *
 *   UPDATE tasks SET state = 'succeeded', …, result = taskq_outcome_result(id)
 *   WHERE id BETWEEN ?lo AND ?hi AND owner = ?owner AND state = 'running'
 *     AND has_dependants IS NULL AND attempts = taskq_outcome_attempt(id)
 *
 * The fence is the same as the single-row statement's, in SQL: the owner, the
 * state, and the attempt the worker ran (NULL for an id in the range that is not
 * in the batch, so such a row never matches). SQLite evaluates the SET clause only
 * for rows that pass the WHERE clause, so taskq_outcome_result also notes which
 * rows the statement changed; the caller asks with taskq_outcomes_applied and
 * sends the others (a task others wait for, or one no longer this worker's) down
 * the single-row path.
 *
 * Measured in C on taskq's schema (Benchmarks/ceiling/worker_cycle.c), finishing
 * 512-task batches this way cut SQLite's work per claimed-and-finished task from
 * 28.4k to 23.9k instructions (the range claim beside it: 30.8k to 28.4k).
 */
#include "CSQLiteTuning.h"
#include <stdlib.h>
#include <string.h>

struct taskq_outcomes {
    sqlite3_int64 lo;       /* the id range [lo, lo + span) */
    int span;
    int capacity;           /* of the slot array */
    struct slot {
        sqlite3_int64 attempt;  /* 0: no outcome for this id */
        size_t offset, length;  /* the result, in bytes[] */
        int text;               /* store it as TEXT, else as a BLOB */
        int applied;            /* the UPDATE changed this row */
    } *slots;
    unsigned char *bytes;
    size_t used, size;
};

static struct slot *slot_for(taskq_outcomes *o, sqlite3_value *id) {
    sqlite3_int64 k = sqlite3_value_int64(id) - o->lo;
    if (k < 0 || k >= o->span) return NULL;
    struct slot *s = &o->slots[k];
    return s->attempt > 0 ? s : NULL;
}

static void attempt_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    struct slot *s = slot_for(sqlite3_user_data(ctx), argv[0]);
    if (s) sqlite3_result_int64(ctx, s->attempt); else sqlite3_result_null(ctx);
}

static void result_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    taskq_outcomes *o = sqlite3_user_data(ctx);
    struct slot *s = slot_for(o, argv[0]);
    if (!s) { sqlite3_result_null(ctx); return; }
    s->applied = 1;
    /* SQLITE_TRANSIENT: SQLite copies it, and `bytes` may move at the next batch.
       An empty output is an empty value, not NULL: SQLite reads a NULL pointer as
       NULL, and `bytes` is NULL until the first output that has any. */
    static const char empty[1];
    const char *p = s->length ? (const char *)o->bytes + s->offset : empty;
    if (s->text) sqlite3_result_text64(ctx, p, s->length, SQLITE_TRANSIENT, SQLITE_UTF8);
    else sqlite3_result_blob64(ctx, p, s->length, SQLITE_TRANSIENT);
}

static void destroy(void *p) {
    taskq_outcomes *o = p;
    free(o->slots);
    free(o->bytes);
    free(o);
}

taskq_outcomes *taskq_outcomes_register(sqlite3 *db) {
    taskq_outcomes *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    /* Not SQLITE_DETERMINISTIC: the answer changes from batch to batch. The first
       function owns `o`: its destructor runs when it is dropped (the connection
       closes), and also when registering it fails (SQLite calls it then). */
    if (sqlite3_create_function_v2(db, "taskq_outcome_result", 1, SQLITE_UTF8 | SQLITE_DIRECTONLY, o,
                                   result_fn, NULL, NULL, destroy) != SQLITE_OK)
        return NULL;
    if (sqlite3_create_function_v2(db, "taskq_outcome_attempt", 1, SQLITE_UTF8 | SQLITE_DIRECTONLY, o,
                                   attempt_fn, NULL, NULL, NULL) != SQLITE_OK) {
        /* Drop the first again, which frees `o`: no function may point at it. */
        sqlite3_create_function_v2(db, "taskq_outcome_result", 1, SQLITE_UTF8, NULL, NULL, NULL, NULL, NULL);
        return NULL;
    }
    return o;
}

int taskq_outcomes_begin(taskq_outcomes *o, sqlite3_int64 lo, int span) {
    if (span < 1) return SQLITE_MISUSE;
    if (span > o->capacity) {
        struct slot *s = realloc(o->slots, (size_t)span * sizeof *s);
        if (!s) return SQLITE_NOMEM;
        o->slots = s;
        o->capacity = span;
    }
    memset(o->slots, 0, (size_t)span * sizeof *o->slots);
    o->lo = lo;
    o->span = span;
    o->used = 0;
    return SQLITE_OK;
}

int taskq_outcomes_add(taskq_outcomes *o, sqlite3_int64 id, sqlite3_int64 attempt,
                       const void *bytes, size_t length, int text) {
    sqlite3_int64 k = id - o->lo;
    /* A second outcome for one task: the caller sends the batch down the
       single-row path, which accepts at most one of them. */
    if (k < 0 || k >= o->span || attempt < 1 || o->slots[k].attempt > 0) return SQLITE_MISUSE;
    if (o->used + length > o->size) {
        size_t size = o->size ? o->size : 4096;
        while (size < o->used + length) size *= 2;
        unsigned char *b = realloc(o->bytes, size);
        if (!b) return SQLITE_NOMEM;
        o->bytes = b;
        o->size = size;
    }
    if (length) memcpy(o->bytes + o->used, bytes, length);
    o->slots[k] = (struct slot){ attempt, o->used, length, text, 0 };
    o->used += length;
    return SQLITE_OK;
}

int taskq_outcomes_applied(taskq_outcomes *o, sqlite3_int64 id) {
    sqlite3_int64 k = id - o->lo;
    return k >= 0 && k < o->span && o->slots[k].applied;
}
