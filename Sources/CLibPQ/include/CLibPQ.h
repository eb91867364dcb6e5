// libpq, PostgreSQL's C client library, loaded at run time (dlopen of libpq.so.5)
// the first time a PostgreSQL queue is opened, not linked: linking it made every
// taskq process, SQLite ones too, load libpq's twenty libraries (TLS, Kerberos,
// LDAP) at start, which doubled the start-up time of `taskq enqueue` and added
// 5 MiB to each worker. So taskq builds without libpq-dev and runs SQLite queues
// without libpq; PostgreSQL needs the libpq5 package at run time.
//
// Declared here: the few types and functions of libpq-fe.h that taskq uses, with
// their stable ABI (libpq's soname has been 5 since PostgreSQL 8.0); each function
// calls through a pointer that taskq_libpq_load() fills.
#ifndef TASKQ_CLIBPQ_H
#define TASKQ_CLIBPQ_H

#include <stddef.h>

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef unsigned int Oid;

typedef enum { CONNECTION_OK, CONNECTION_BAD } ConnStatusType;
typedef enum {
    PGRES_EMPTY_QUERY = 0, PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_OUT, PGRES_COPY_IN,
    PGRES_BAD_RESPONSE, PGRES_NONFATAL_ERROR, PGRES_FATAL_ERROR, PGRES_COPY_BOTH, PGRES_SINGLE_TUPLE,
    PGRES_PIPELINE_SYNC, PGRES_PIPELINE_ABORTED
} ExecStatusType;
typedef enum { PQTRANS_IDLE, PQTRANS_ACTIVE, PQTRANS_INTRANS, PQTRANS_INERROR, PQTRANS_UNKNOWN } PGTransactionStatusType;
typedef struct pgNotify { char *relname; int be_pid; char *extra; struct pgNotify *next; } PGnotify;
typedef void (*PQnoticeProcessor)(void *arg, const char *message);
typedef struct _PQconninfoOption PQconninfoOption;

/// Loads libpq once; 0 when it is there, else -1 with the reason in taskq_libpq_error().
int taskq_libpq_load(void);
const char *taskq_libpq_error(void);

struct taskq_libpq {
    PGconn *(*connectdb)(const char *);
    void (*finish)(PGconn *);
    ConnStatusType (*status)(const PGconn *);
    PGTransactionStatusType (*transactionStatus)(const PGconn *);
    const char *(*parameterStatus)(const PGconn *, const char *);
    char *(*errorMessage)(const PGconn *);
    int (*socket)(const PGconn *);
    char *(*db)(const PGconn *);
    char *(*host)(const PGconn *);
    int (*setClientEncoding)(PGconn *, const char *);
    PQnoticeProcessor (*setNoticeProcessor)(PGconn *, PQnoticeProcessor, void *);
    PGresult *(*exec)(PGconn *, const char *);
    PGresult *(*execParams)(PGconn *, const char *, int, const Oid *, const char *const *, const int *, const int *, int);
    ExecStatusType (*resultStatus)(const PGresult *);
    char *(*resultErrorField)(const PGresult *, int);
    int (*ntuples)(const PGresult *);
    char *(*getvalue)(const PGresult *, int, int);
    int (*getlength)(const PGresult *, int, int);
    int (*getisnull)(const PGresult *, int, int);
    char *(*cmdTuples)(PGresult *);
    void (*clear)(PGresult *);
    PGnotify *(*notifies)(PGconn *);
    void (*freemem)(void *);
    int (*consumeInput)(PGconn *);
    void (*reset)(PGconn *);
    PGresult *(*prepare)(PGconn *, const char *, const char *, int, const Oid *);
    PGresult *(*execPrepared)(PGconn *, const char *, int, const char *const *, const int *, const int *, int);
    int (*sendPrepare)(PGconn *, const char *, const char *, int, const Oid *);
    int (*sendQueryPrepared)(PGconn *, const char *, int, const char *const *, const int *, const int *, int);
    PGresult *(*getResult)(PGconn *);
    PQconninfoOption *(*conninfoParse)(const char *, char **);
    void (*conninfoFree)(PQconninfoOption *);
    // Pipeline mode (libpq 14 and later); NULL with an older libpq.
    int (*enterPipelineMode)(PGconn *);
    int (*exitPipelineMode)(PGconn *);
    int (*pipelineSync)(PGconn *);
};
extern struct taskq_libpq taskq_libpq;

static inline PGconn *PQconnectdb(const char *c) { return taskq_libpq.connectdb(c); }
static inline void PQfinish(PGconn *c) { taskq_libpq.finish(c); }
static inline ConnStatusType PQstatus(const PGconn *c) { return taskq_libpq.status(c); }
static inline PGTransactionStatusType PQtransactionStatus(const PGconn *c) { return taskq_libpq.transactionStatus(c); }
static inline const char *PQparameterStatus(const PGconn *c, const char *n) { return taskq_libpq.parameterStatus(c, n); }
static inline char *PQerrorMessage(const PGconn *c) { return taskq_libpq.errorMessage(c); }
static inline int PQsocket(const PGconn *c) { return taskq_libpq.socket(c); }
static inline char *PQdb(const PGconn *c) { return taskq_libpq.db(c); }
static inline char *PQhost(const PGconn *c) { return taskq_libpq.host(c); }
static inline int PQsetClientEncoding(PGconn *c, const char *e) { return taskq_libpq.setClientEncoding(c, e); }
static inline PQnoticeProcessor PQsetNoticeProcessor(PGconn *c, PQnoticeProcessor p, void *a) { return taskq_libpq.setNoticeProcessor(c, p, a); }
static inline PGresult *PQexec(PGconn *c, const char *q) { return taskq_libpq.exec(c, q); }
static inline PGresult *PQexecParams(PGconn *c, const char *q, int n, const Oid *types, const char *const *values,
                                     const int *lengths, const int *formats, int resultFormat) {
    return taskq_libpq.execParams(c, q, n, types, values, lengths, formats, resultFormat);
}
static inline ExecStatusType PQresultStatus(const PGresult *r) { return taskq_libpq.resultStatus(r); }
static inline char *PQresultErrorField(const PGresult *r, int f) { return taskq_libpq.resultErrorField(r, f); }
static inline int PQntuples(const PGresult *r) { return taskq_libpq.ntuples(r); }
static inline char *PQgetvalue(const PGresult *r, int t, int f) { return taskq_libpq.getvalue(r, t, f); }
static inline int PQgetlength(const PGresult *r, int t, int f) { return taskq_libpq.getlength(r, t, f); }
static inline int PQgetisnull(const PGresult *r, int t, int f) { return taskq_libpq.getisnull(r, t, f); }
static inline char *PQcmdTuples(PGresult *r) { return taskq_libpq.cmdTuples(r); }
static inline void PQclear(PGresult *r) { taskq_libpq.clear(r); }
static inline PGnotify *PQnotifies(PGconn *c) { return taskq_libpq.notifies(c); }
static inline void PQfreemem(void *p) { taskq_libpq.freemem(p); }
static inline int PQconsumeInput(PGconn *c) { return taskq_libpq.consumeInput(c); }
static inline void PQreset(PGconn *c) { taskq_libpq.reset(c); }
static inline PGresult *PQprepare(PGconn *c, const char *name, const char *q, int n, const Oid *types) {
    return taskq_libpq.prepare(c, name, q, n, types);
}
static inline PGresult *PQexecPrepared(PGconn *c, const char *name, int n, const char *const *values, const int *lengths,
                                       const int *formats, int resultFormat) {
    return taskq_libpq.execPrepared(c, name, n, values, lengths, formats, resultFormat);
}
static inline int PQsendPrepare(PGconn *c, const char *name, const char *q, int n, const Oid *types) {
    return taskq_libpq.sendPrepare(c, name, q, n, types);
}
static inline int PQsendQueryPrepared(PGconn *c, const char *name, int n, const char *const *values, const int *lengths,
                                      const int *formats, int resultFormat) {
    return taskq_libpq.sendQueryPrepared(c, name, n, values, lengths, formats, resultFormat);
}
static inline PGresult *PQgetResult(PGconn *c) { return taskq_libpq.getResult(c); }
static inline PQconninfoOption *PQconninfoParse(const char *s, char **err) { return taskq_libpq.conninfoParse(s, err); }
static inline void PQconninfoFree(PQconninfoOption *o) { taskq_libpq.conninfoFree(o); }
/// 1 when this libpq has pipeline mode (14 and later).
static inline int taskq_libpq_has_pipeline(void) { return taskq_libpq.pipelineSync != NULL; }
static inline int PQenterPipelineMode(PGconn *c) { return taskq_libpq.enterPipelineMode(c); }
static inline int PQexitPipelineMode(PGconn *c) { return taskq_libpq.exitPipelineMode(c); }
static inline int PQpipelineSync(PGconn *c) { return taskq_libpq.pipelineSync(c); }

#endif
