// The few system calls taskq needs that Swift cannot call directly (variadic
// prctl, posix_spawn attribute plumbing) or should not (signal handlers must be
// plain C functions that only touch async-signal-safe state).
#ifndef CTASKQ_SYSTEM_H
#define CTASKQ_SYSTEM_H
#include <sys/types.h>
#include <stdint.h>

/// Ask the kernel to send `sig` to this process when the thread that spawned it
/// exits. Returns 0 or -1 (errno set).
int taskq_set_parent_death_signal(int sig);

/// Spawn `path` with `argv`/`envp`. The child starts with an empty signal mask and
/// default dispositions for every signal (blocked masks and SIG_IGN survive exec).
/// `new_session`: the child calls setsid (its pid becomes its session and group id).
/// `new_group`: the child gets its own process group (pgid = its pid).
/// `stdin_fd`/`stdout_fd`/`stderr_fd`: dup'ed onto 0/1/2 when >= 0.
/// `close_fds`: up to `n_close` fds closed in the child (the parent's pipe ends).
/// `cwd`: directory to start in, or NULL. Returns 0 and sets *pid, or an errno value.
int taskq_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                int new_session, int new_group,
                int stdin_fd, int stdout_fd, int stderr_fd,
                const int *close_fds, int n_close);

/// Install flag-setting handlers: each listed signal sets taskq_signal_flags bit
/// (1 << signo) with an atomic or. SA_RESTART is NOT set, so blocking calls wake
/// with EINTR. Returns 0 or -1.
int taskq_install_flag_handler(int sig);
/// Atomically read and clear the pending signal bits.
uint64_t taskq_take_signal_flags(void);
/// Read without clearing.
uint64_t taskq_peek_signal_flags(void);

/// A handler for the parent-death signal of a worker: kill the process group
/// `taskq_handler_pgid` (if > 0) with SIGKILL, then _exit(code). Everything in it
/// is async-signal-safe.
int taskq_install_die_with_child_group(int sig, int exit_code);
void taskq_set_handler_pgid(pid_t pgid);

/// Block or unblock `sig` for the calling thread (pthread_sigmask).
int taskq_block_signal(int sig, int block);
/// sigtimedwait on the given signals for up to `timeout_ms`; returns the signal
/// number, 0 on timeout, -1 on EINTR/error.
int taskq_wait_signals(const int *sigs, int n, int timeout_ms);



/// Number of CPUs this process may run on (its affinity mask), at least 1.
int taskq_cpu_count(void);
/// pidfd_open(2): a file descriptor that becomes readable when `pid` exits; -1 on error.
int taskq_pidfd_open(pid_t pid);
/// Kill the current handler process group (if any) and _exit(code) at once.
void taskq_die(int code) __attribute__((noreturn));
/// Start a detached thread running fn(arg). Returns 0 or an errno value.
int taskq_start_thread(void (*fn)(void *), void *arg);
/// pipe2(fds, O_CLOEXEC). Returns 0 or -1.
int taskq_pipe_cloexec(int fds[2]);
/// memfd_create(name, 0): an anonymous file, inherited across exec. Returns the fd or -1.
int taskq_memfd(const char *name);
#endif
