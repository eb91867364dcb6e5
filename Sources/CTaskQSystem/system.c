#define _GNU_SOURCE
#include "CTaskQSystem.h"
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

int taskq_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

int taskq_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                int new_session, int new_group,
                int stdin_fd, int stdout_fd, int stderr_fd,
                const int *close_fds, int n_close) {
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    int rc = posix_spawnattr_init(&attr);
    if (rc) return rc;
    rc = posix_spawn_file_actions_init(&fa);
    if (rc) { posix_spawnattr_destroy(&attr); return rc; }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (new_session) flags |= POSIX_SPAWN_SETSID;
    else if (new_group) flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setflags(&attr, flags);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    if (new_group && !new_session) posix_spawnattr_setpgroup(&attr, 0);
    if (stdin_fd >= 0) posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
    if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&fa, stdout_fd, 1);
    if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&fa, stderr_fd, 2);
    for (int i = 0; i < n_close; i++)
        if (close_fds[i] > 2) posix_spawn_file_actions_addclose(&fa, close_fds[i]);
    rc = posix_spawn(pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

static _Atomic uint64_t signal_flags = 0;

static void flag_handler(int sig) {
    atomic_fetch_or(&signal_flags, ((uint64_t)1) << sig);
}

int taskq_install_flag_handler(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = flag_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: poll/read wake with EINTR */
    return sigaction(sig, &sa, NULL);
}

uint64_t taskq_take_signal_flags(void) { return atomic_exchange(&signal_flags, 0); }
uint64_t taskq_peek_signal_flags(void) { return atomic_load(&signal_flags); }

static volatile sig_atomic_t handler_pgid = 0;
static int die_exit_code = 1;

void taskq_set_handler_pgid(pid_t pgid) { handler_pgid = pgid; }

static void die_handler(int sig) {
    (void)sig;
    pid_t g = handler_pgid;
    if (g > 0) kill(-g, SIGKILL);
    _exit(die_exit_code);
}

int taskq_install_die_with_child_group(int sig, int exit_code) {
    die_exit_code = exit_code;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = die_handler;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

int taskq_block_signal(int sig, int block) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    return pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}

int taskq_wait_signals(const int *sigs, int n, int timeout_ms) {
    sigset_t s;
    sigemptyset(&s);
    for (int i = 0; i < n; i++) sigaddset(&s, sigs[i]);
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
    int r = sigtimedwait(&s, NULL, &ts);
    if (r < 0) return (errno == EAGAIN) ? 0 : -1;
    return r;
}

#include <sched.h>
#include <sys/syscall.h>

int taskq_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int taskq_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

#include <pthread.h>
#include <stdlib.h>

void taskq_die(int code) {
    pid_t g = handler_pgid;
    if (g > 0) kill(-g, SIGKILL);
    _exit(code);
}

struct thread_start { void (*fn)(void *); void *arg; };

static void *thread_main(void *p) {
    struct thread_start s = *(struct thread_start *)p;
    free(p);
    /* Signals are the main thread's business. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    s.fn(s.arg);
    return NULL;
}

int taskq_start_thread(void (*fn)(void *), void *arg) {
    struct thread_start *s = malloc(sizeof *s);
    if (!s) return ENOMEM;
    s->fn = fn;
    s->arg = arg;
    pthread_t t;
    int rc = pthread_create(&t, NULL, thread_main, s);
    if (rc) { free(s); return rc; }
    pthread_detach(t);
    return 0;
}

#include <fcntl.h>
int taskq_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

#include <sys/mman.h>
int taskq_memfd(const char *name) {
#ifdef SYS_memfd_create
    return (int)syscall(SYS_memfd_create, name, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}
