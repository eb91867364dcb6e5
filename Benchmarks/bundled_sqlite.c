// The SQLite of the BundledSQLite build, for C programs beside taskq: the harness's
// limit program (`run_peers.sh --own-sqlite "taskq-bundled=$PWD/Benchmarks/bundled_sqlite.c"`)
// compiles this file, which turns the bundled target's amalgamation on as that
// build trait does.
#define TASKQ_BUNDLED_SQLITE 1
#include "../Sources/CSQLiteBundled/csqlite.c"
