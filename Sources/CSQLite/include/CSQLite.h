// The one SQLite module taskq's code imports (Swift: `import CSQLite`; C: this
// header), whichever SQLite the build uses (README.md beside include/ says why
// there are two):
// - by default the system's: <sqlite3.h>, linked with -lsqlite3 (Sources/CSQLiteSystem);
// - with the BundledSQLite package trait, the amalgamation in Sources/CSQLiteBundled.
// The trait makes CSQLiteBundled a dependency of this target, which puts its include
// directory, and so CSQLiteBundled.h, on the header search path: that is what is
// tested here (a define would not reach the Swift modules that import this one).
#ifndef CSQLITE_H
#define CSQLITE_H
#if __has_include("CSQLiteBundled.h")
#include "CSQLiteBundled.h"
#else
#include <sqlite3.h>
#endif
#endif
