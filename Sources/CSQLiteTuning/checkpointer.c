/*
 * Checkpoints off the commit path.
 *
 * SQLite's automatic checkpoint runs inside the commit that pushes the WAL past
 * 1,000 pages: that commit's caller waits while SQLite copies the WAL into the
 * database and calls fdatasync twice, on megabytes of freshly written pages.
 * Measured on this machine, a producer committing one task at a time was off the
 * CPU a third of its wall time, mostly in those syncs; and one late commit is one
 * late task for every task enqueued behind it.
 *
 * Here a connection's commits only note that the WAL is long and wake a thread of
 * this process, which checkpoints (PASSIVE: writers go on appending meanwhile) on
 * a connection of its own. A PASSIVE checkpoint cannot catch up with a writer
 * that keeps committing, and SQLite restarts the WAL from its beginning only once
 * every frame in it is copied; so when the thread is done and the few frames
 * written meanwhile are all that is left, the next commit copies them itself:
 * a small checkpoint with little to sync, after which the WAL starts over.
 * Without this second step the WAL would grow for as long as commits keep coming.
 * Should writers outrun the thread until the WAL is four times its length, a
 * commit copies it all itself, as SQLite would have, which bounds the WAL.
 * How much is copied is read from SQLite (a NOOP checkpoint), never remembered:
 * other connections and processes checkpoint and restart the same WAL. A SQLite
 * without NOOP checkpoints (before 3.51: Debian 12 has 3.40) answers SQLITE_MISUSE;
 * the same figure is then read where SQLite keeps it (taskq_wal_backfilled).
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
    int asked_at;           /* WAL length when the thread was last asked */
    sqlite3 *db;            /* the thread's connection while it is open (for detach's
                               sqlite3_interrupt) */
    int retry_at;           /* after a failed one (another process held the checkpoint
                               lock): WAL length before asking again */
    int no_noop;            /* this SQLite has no NOOP checkpoint */
};

#ifndef SQLITE_CHECKPOINT_NOOP
#define SQLITE_CHECKPOINT_NOOP -1   /* SQLite 3.51's; older headers lack it */
#endif

/* nBackfill is the first u32 of the WAL-index's checkpoint information, at byte 96
   of the -shm file's first region, in native byte order
   (https://sqlite.org/walformat.html). */
int taskq_wal_backfilled(sqlite3 *db, const char *schema) {
    sqlite3_file *file = NULL;
    if (sqlite3_file_control(db, schema, SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK || !file
        || !file->pMethods || file->pMethods->iVersion < 2 || !file->pMethods->xShmMap) return -1;
    volatile void *region = NULL;   /* mapped already, if the connection uses the WAL */
    if (file->pMethods->xShmMap(file, 0, 32768, 0, &region) != SQLITE_OK || !region) return -1;
    return (int)((volatile const unsigned int *)region)[24];
}

static void *run(void *arg) {
    taskq_checkpointer *c = arg;
    pthread_setname_np(pthread_self(), "taskq-ckpt");   /* 15 characters at most */
    sqlite3 *db = NULL;
    int ok = sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK;
    if (ok) sqlite3_exec(db, c->synchronous >= 2 ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", 0, 0, 0);
    int failures = 0;
    pthread_mutex_lock(&c->mu);
    if (ok) c->db = db;
    while (ok && !c->stopping) {
        if (!c->wanted) { pthread_cond_wait(&c->cv, &c->mu); continue; }
        c->wanted = 0;
        c->running = 1;
        int asked_at = c->asked_at;
        pthread_mutex_unlock(&c->mu);
        int log = -1, done = -1;
        /* A read first: on a connection that has not read since it opened, SQLite
           has not opened the WAL, and a checkpoint does nothing (log -1). */
        int rc = sqlite3_exec(db, "SELECT 1 FROM sqlite_schema LIMIT 1", 0, 0, 0);
        if (rc == SQLITE_OK) rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc == SQLITE_OK && log < 0) rc = SQLITE_ERROR;
        pthread_mutex_lock(&c->mu);
        c->running = 0;
        /* Not asked again before the WAL grows by a quarter more (a failed attempt
           leaves log at -1, hence the length it was asked at). */
        c->retry_at = rc == SQLITE_OK ? 0 : (log > asked_at ? log : asked_at) + c->frames / 4;
        /* Another process checkpointing (SQLITE_BUSY) is normal; any other failure
           three times running hands checkpoints back to the commits. */
        failures = (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY) ? 0 : failures + 1;
        if (failures >= 3) ok = 0;
    }
    if (!ok && !c->stopping) c->broken = 1;   /* commits checkpoint inline from now on, as SQLite would */
    c->db = NULL;
    pthread_mutex_unlock(&c->mu);
    sqlite3_close_v2(db);
    return NULL;
}

/* The WAL hook: runs in the committing thread, after its commit; `length` is the
   WAL's length in pages, copied or not. */
static int after_commit(void *arg, sqlite3 *db, const char *schema, int length) {
    taskq_checkpointer *c = arg;
    if (length < c->frames) return SQLITE_OK;
    pthread_mutex_lock(&c->mu);
    int busy = c->running || c->wanted, broken = c->broken;
    pthread_mutex_unlock(&c->mu);
    if (busy) return SQLITE_OK;   /* the thread is on it (an inline one would find it holding the lock) */
    int inline_now = broken;
    if (!inline_now) {
        /* How much of the WAL is copied already, by anyone: read, nothing done. */
        int log = -1, copied = -1;
        int rc = c->no_noop ? SQLITE_MISUSE : sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_NOOP, &log, &copied);
        if (rc == SQLITE_MISUSE) {
            c->no_noop = 1;   /* (written by committing threads only: one per connection) */
            log = length;
            copied = taskq_wal_backfilled(db, schema);
            rc = SQLITE_OK;
        }
        if (rc == SQLITE_OK && copied >= 0) {
            /* The rest is small: copy it here, so the WAL starts over. Or the WAL has
               grown four times over because the thread never catches up with the
               writers: copy it here too, holding this committer back as SQLite would. */
            inline_now = log - copied <= c->frames / 2 || length >= 4 * c->frames;
        }
    }
    if (inline_now) {
        sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return SQLITE_OK;
    }
    pthread_mutex_lock(&c->mu);
    if (!c->running && !c->wanted && length >= c->retry_at) {
        if (!c->started) {
            /* The thread takes no asynchronous signals: they stay with the threads that
               wait for them. (A fault in it still reaches the process's handlers.) */
            sigset_t all, old;
            sigfillset(&all);
            sigdelset(&all, SIGSEGV);
            sigdelset(&all, SIGBUS);
            sigdelset(&all, SIGFPE);
            sigdelset(&all, SIGILL);
            pthread_sigmask(SIG_BLOCK, &all, &old);
            c->started = pthread_create(&c->thread, NULL, run, c) == 0;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            if (!c->started) c->broken = 1;
        }
        if (c->started) {
            c->wanted = 1;
            c->asked_at = length;
            pthread_cond_signal(&c->cv);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return SQLITE_OK;
}

taskq_checkpointer *taskq_checkpointer_attach(sqlite3 *db, const char *path, int frames, int synchronous) {
    taskq_checkpointer *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    /* The file SQLite opened (absolute), not the path as given: a later chdir must
       not send the thread to another file. */
    const char *name = sqlite3_db_filename(db, "main");
    c->path = strdup(name && *name ? name : path);
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
    /* A checkpoint under way stops at its next page rather than making the closing
       connection (a worker on its way out) wait for it: what it has not copied stays
       in the WAL, for the next checkpoint. sqlite3_interrupt may be called from any
       thread; the connection stays open while mu is held. */
    if (c->running && c->db) sqlite3_interrupt(c->db);
    pthread_cond_signal(&c->cv);
    int started = c->started;
    pthread_mutex_unlock(&c->mu);
    if (started) pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->path);
    free(c);
}
