// libpq, PostgreSQL's C client library (Debian: libpq-dev), for the PostgreSQL store.
#include <libpq-fe.h>
