/*
 * Checkpoints off the commit path.
 *
 * SQLite's automatic checkpoint runs inside the commit that pushes the WAL past
 * 1,000 pages: that commit's caller waits while SQLite copies the WAL into the
 * database and calls fdatasync twice, on megabytes of freshly written pages.
 * Measured on this machine, a producer committing one task at a time was off the
 * CPU a third of its wall time, mostly in those syncs; a worker draining the queue
 * the same; and one late commit is one late task for every task enqueued behind it.
 *
 * Here a connection's commits only note that the WAL is long and wake a thread of
 * this process, which checkpoints (PASSIVE: writers go on appending meanwhile) on
 * a connection of its own. A PASSIVE checkpoint cannot catch up with a writer
 * that keeps committing, and SQLite restarts the WAL from its beginning only once
 * every frame in it is copied; so when the thread is done and the few frames
 * written meanwhile are all that is left, the next commit copies them itself:
 * a small checkpoint with little to sync, after which the WAL starts over.
 * Without this second step the WAL would grow for as long as commits keep coming.
 */
#define _GNU_SOURCE
#include "CSQLiteTuning.h"
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct taskq_checkpointer {
    char *path;
    int frames;             /* WAL length (pages) that calls for a checkpoint */
    int synchronous;        /* 1 NORMAL, 2 FULL: the syncs the checkpoint makes */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started;            /* the thread exists */
    int broken;             /* no thread: checkpoint inline, as SQLite would */
    int wanted;             /* a checkpoint is asked for */
    int running;            /* the thread is checkpointing */
    int stopping;
    int copied;             /* WAL frames copied by the thread's last checkpoint; 0: none
                               this WAL cycle (or it failed) */
    int retry_at;           /* after a failed one (another process held the checkpoint
                               lock): WAL length before asking again */
};

static void *run(void *arg) {
    taskq_checkpointer *c = arg;
    pthread_setname_np(pthread_self(), "taskq-ckpt");   /* 15 characters at most */
    sqlite3 *db = NULL;
    int ok = sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK;
    if (ok) sqlite3_exec(db, c->synchronous >= 2 ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", 0, 0, 0);
    int failures = 0;
    pthread_mutex_lock(&c->mu);
    while (ok && !c->stopping) {
        if (!c->wanted) { pthread_cond_wait(&c->cv, &c->mu); continue; }
        c->wanted = 0;
        c->running = 1;
        pthread_mutex_unlock(&c->mu);
        int log = -1, done = -1;
        /* A read first: on a connection that has not read since it opened, SQLite
           has not opened the WAL, and a checkpoint does nothing (log -1). */
        int rc = sqlite3_exec(db, "SELECT 1 FROM sqlite_schema LIMIT 1", 0, 0, 0);
        if (rc == SQLITE_OK) rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc == SQLITE_OK && log < 0) rc = SQLITE_ERROR;
        pthread_mutex_lock(&c->mu);
        c->running = 0;
        c->copied = (rc == SQLITE_OK && done > 0) ? done : 0;
        if (c->copied == 0) c->retry_at = (log > 0 ? log : 0) + c->frames / 4;
        /* Another process checkpointing (SQLITE_BUSY) is normal; any other failure
           three times running hands checkpoints back to the commits. */
        failures = (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY) ? 0 : failures + 1;
        if (failures >= 3) ok = 0;
    }
    if (!ok) c->broken = 1;     /* commits checkpoint inline from now on, as SQLite would */
    pthread_mutex_unlock(&c->mu);
    sqlite3_close_v2(db);
    return NULL;
}

/* The WAL hook: runs in the committing thread, after its commit. */
static int after_commit(void *arg, sqlite3 *db, const char *schema, int length) {
    taskq_checkpointer *c = arg;
    int inline_now = 0;
    pthread_mutex_lock(&c->mu);
    if (length < c->frames) {
        c->copied = 0;          /* a new WAL cycle began */
        c->retry_at = 0;
    } else if (c->broken) {
        inline_now = 1;
    } else if (c->running || c->wanted) {
        /* the thread is on it */
    } else if (c->copied > 0 && length - c->copied <= c->frames / 2) {
        inline_now = 1;         /* the rest is small: copy it here so the WAL restarts */
        c->copied = 0;
    } else if (length >= c->retry_at) {
        if (!c->started) {
            /* The thread takes no signals: they stay with the threads that wait for them. */
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_BLOCK, &all, &old);
            c->started = pthread_create(&c->thread, NULL, run, c) == 0;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            if (!c->started) c->broken = 1;
        }
        if (c->started) {
            c->wanted = 1;
            pthread_cond_signal(&c->cv);
        } else {
            inline_now = 1;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (inline_now) sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

taskq_checkpointer *taskq_checkpointer_attach(sqlite3 *db, const char *path, int frames, int synchronous) {
    taskq_checkpointer *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->path = strdup(path);
    if (!c->path) { free(c); return NULL; }
    c->frames = frames > 0 ? frames : 1000;
    c->synchronous = synchronous;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    sqlite3_wal_hook(db, after_commit, c);
    return c;
}

void taskq_checkpointer_detach(sqlite3 *db, taskq_checkpointer *c) {
    if (!c) return;
    sqlite3_wal_hook(db, NULL, NULL);
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_signal(&c->cv);
    int started = c->started;
    pthread_mutex_unlock(&c->mu);
    if (started) pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->path);
    free(c);
}
