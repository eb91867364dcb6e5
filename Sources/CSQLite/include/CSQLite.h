// The SQLite bundled with taskq (sqlite3.c beside this folder; see ../README.md).
#include "sqlite3.h"
