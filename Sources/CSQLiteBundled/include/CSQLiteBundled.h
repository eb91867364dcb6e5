// The SQLite bundled with taskq (../sqlite3.c; see Sources/CSQLite/README.md), built
// only with the BundledSQLite package trait. Its presence on the include path is
// how Sources/CSQLite/include/CSQLite.h chooses it over the system's <sqlite3.h>.
#include "sqlite3.h"
