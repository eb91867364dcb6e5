// Loads libpq.so.5 and fills the function table (see include/CLibPQ.h).
#include "CLibPQ.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

struct taskq_libpq taskq_libpq;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded = -1;
static char error[512];

static void load(void) {
    void *h = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(error, sizeof error, "PostgreSQL's client library is missing (%s): install it (Debian: apt-get install libpq5)", dlerror());
        return;
    }
#define SYM(field, name) \
    if (!(*(void **)&taskq_libpq.field = dlsym(h, name))) { \
        snprintf(error, sizeof error, "libpq.so.5 lacks %s: a libpq too old for taskq", name); \
        return; \
    }
    SYM(connectdb, "PQconnectdb") SYM(finish, "PQfinish") SYM(status, "PQstatus")
    SYM(transactionStatus, "PQtransactionStatus") SYM(parameterStatus, "PQparameterStatus")
    SYM(errorMessage, "PQerrorMessage") SYM(socket, "PQsocket") SYM(db, "PQdb") SYM(host, "PQhost")
    SYM(setClientEncoding, "PQsetClientEncoding") SYM(setNoticeProcessor, "PQsetNoticeProcessor")
    SYM(exec, "PQexec") SYM(execParams, "PQexecParams") SYM(resultStatus, "PQresultStatus")
    SYM(resultErrorField, "PQresultErrorField") SYM(ntuples, "PQntuples") SYM(getvalue, "PQgetvalue")
    SYM(getlength, "PQgetlength") SYM(getisnull, "PQgetisnull") SYM(cmdTuples, "PQcmdTuples")
    SYM(clear, "PQclear") SYM(notifies, "PQnotifies") SYM(freemem, "PQfreemem") SYM(consumeInput, "PQconsumeInput")
    SYM(reset, "PQreset") SYM(prepare, "PQprepare") SYM(execPrepared, "PQexecPrepared")
    SYM(sendPrepare, "PQsendPrepare") SYM(sendQueryPrepared, "PQsendQueryPrepared") SYM(getResult, "PQgetResult")
    SYM(conninfoParse, "PQconninfoParse") SYM(conninfoFree, "PQconninfoFree")
#undef SYM
    // Pipeline mode is optional: without it, taskq sends a pipeline's statements one by one.
    *(void **)&taskq_libpq.enterPipelineMode = dlsym(h, "PQenterPipelineMode");
    *(void **)&taskq_libpq.exitPipelineMode = dlsym(h, "PQexitPipelineMode");
    *(void **)&taskq_libpq.pipelineSync = dlsym(h, "PQpipelineSync");
    if (!taskq_libpq.enterPipelineMode || !taskq_libpq.exitPipelineMode) taskq_libpq.pipelineSync = NULL;
    loaded = 0;
}

int taskq_libpq_load(void) {
    pthread_once(&once, load);
    return loaded;
}

const char *taskq_libpq_error(void) { return error; }
