// The system's SQLite headers (pkg-config sqlite3; libsqlite3-dev on Debian).
#include <sqlite3.h>
