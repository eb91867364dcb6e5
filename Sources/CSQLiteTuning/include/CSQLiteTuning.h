#ifndef CSQLITE_TUNING_H
#define CSQLITE_TUNING_H
/// Process-wide SQLite settings that must be made before the first connection
/// (sqlite3_config is variadic, so Swift cannot call it): connections are used
/// by one thread at a time (multi-thread mode, no per-connection mutex), no
/// memory statistics are kept (they take a global mutex on every allocation), and
/// a database path is a file name, never a URI unless asked (SQLITE_OPEN_URI).
/// The bundled SQLite is compiled with the first two; the system's is set here.
/// Safe to call more than once. Returns the sqlite3_config result code.
int taskq_sqlite_tune(void);

#include <stddef.h>
#include "CSQLite.h"
/// Installs taskq's busy handler on `db`: while another connection holds the write
/// lock, retry after yielding, then after sleeps growing from 20 µs to 2 ms, for up
/// to `timeout_ms` in all. SQLite's own handler (sqlite3_busy_timeout) sleeps at
/// least 1 ms per retry, which caps a hand-over between two busy workers at about
/// a thousand per second; write transactions here last tens of microseconds.
int taskq_sqlite_busy_handler(sqlite3 *db, int timeout_ms);
/// Turns triggers off for this connection only (SQLITE_DBCONFIG_ENABLE_TRIGGER).
/// taskq's schema has one trigger, guarding state changes made by hand in the
/// sqlite3 shell; taskq's own statements are fenced and tested against the same
/// state machine, and the trigger costs about a third of a claim+complete.
int taskq_sqlite_disable_triggers(sqlite3 *db);

/// Checkpoints off the commit path (checkpointer.c says why): `db`'s commits no
/// longer checkpoint the WAL themselves once it is `frames` pages long; a thread of
/// this process does, on its own connection to `path`, started at the first need.
/// `synchronous`: 1 NORMAL, 2 FULL. Detach before closing `db`.
typedef struct taskq_checkpointer taskq_checkpointer;
taskq_checkpointer *taskq_checkpointer_attach(sqlite3 *db, const char *path, int frames, int synchronous);
/// Stops the thread (after the checkpoint it is making, if any) and frees `c`.
void taskq_checkpointer_detach(sqlite3 *db, taskq_checkpointer *c);

/// How many of the WAL's frames are copied into the database file already (the
/// WAL-index's nBackfill), read from the -shm file where SQLite keeps it: what a
/// NOOP checkpoint reports, for a SQLite without them (before 3.51). -1 when it
/// cannot be read (no WAL open on `db`).
int taskq_wal_backfilled(sqlite3 *db, const char *schema);

/// A batch of successful outcomes for one UPDATE over an id range (outcomes.c says
/// why): registers the SQL functions taskq_outcome_attempt(id) (the attempt the
/// worker ran, NULL for an id not in the batch) and taskq_outcome_result(id) (its
/// output; also notes the row as changed) on `db`. Freed when `db` closes.
typedef struct taskq_outcomes taskq_outcomes;
taskq_outcomes *taskq_outcomes_register(sqlite3 *db);
/// Empties the batch for ids lo ..< lo + span.
int taskq_outcomes_begin(taskq_outcomes *o, sqlite3_int64 lo, int span);
/// One outcome: `length` bytes of output (copied), stored as TEXT when `text`.
/// SQLITE_MISUSE for an id outside the range or already in the batch.
int taskq_outcomes_add(taskq_outcomes *o, sqlite3_int64 id, sqlite3_int64 attempt,
                       const void *bytes, size_t length, int text);
/// Whether the last UPDATE changed task `id`'s row.
int taskq_outcomes_applied(taskq_outcomes *o, sqlite3_int64 id);
#endif
