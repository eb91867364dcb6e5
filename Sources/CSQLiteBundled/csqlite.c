// SQLite as taskq bundles it: the options, then the amalgamation (sqlite3.c, kept
// unchanged beside this file and excluded from the target's sources). The options
// live here, not in Package.swift, so that Benchmarks/schema_ceiling.sh compiles
// the same SQLite for its C programs. Sources/CSQLite/README.md says why each one.
//
// SwiftPM compiles every target of the package whichever traits are enabled (it
// only leaves this one out of the link without the BundledSQLite trait), so the
// amalgamation is compiled only when Package.swift defines TASKQ_BUNDLED_SQLITE
// for that trait: the default build, on the system's SQLite, spends no minute on it.
#ifdef TASKQ_BUNDLED_SQLITE
#define SQLITE_THREADSAFE 2
#define SQLITE_DEFAULT_MEMSTATUS 0
#define SQLITE_OMIT_LOAD_EXTENSION 1
#define SQLITE_OMIT_SHARED_CACHE 1
#define SQLITE_OMIT_DEPRECATED 1
#define HAVE_FDATASYNC 1
#define HAVE_USLEEP 1
#define HAVE_LOCALTIME_R 1
#define HAVE_GMTIME_R 1
#include "sqlite3.c"
#endif
