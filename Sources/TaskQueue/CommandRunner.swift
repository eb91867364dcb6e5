import CTaskQSystem
#if canImport(Glibc)
import Glibc
#endif

/// Runs one shell-command handler attempt: `/bin/sh -c COMMAND` in its own process
/// group, payload on stdin, stdout captured (bounded) as the result, the tail of
/// stderr kept (in the error of a failed attempt, beside the result of a successful
/// one), the whole group killed on timeout and when the shell exits (so a forked
/// daemon cannot outlive its task).
struct CommandRunner {
    /// Largest result kept; more output fails the attempt (see docs/reliability.md).
    static let maxResultBytes = 16 << 20
    /// How much of stderr's end is kept, for failed and successful attempts alike.
    static let stderrTailBytes = 2048
    /// The exit status by which a handler fails its task for good, without retries:
    /// sysexits' EX_DATAERR, "the input data was incorrect", which a retry of the
    /// same payload cannot fix (taskq itself exits 65 for bad data).
    static let badDataStatus: Int32 = 65
    /// What a task's error says when its handler failed it for good.
    static let notRetried = "(bad data: failed for good, not retried)"

    enum Outcome: Equatable {
        /// `stderr`: the end of what the handler wrote to stderr, nil when nothing.
        case succeeded([UInt8], stderr: String?)
        /// `timedOut`: the attempt's --timeout passed (kept as "timed out" in the history).
        /// `badData`: it exited `badDataStatus`: no retry.
        case failed(String, timedOut: Bool = false, badData: Bool = false)
    }

    let command: String
    let environment: [String]
    /// Hand a JSON-string payload over as its text plus a newline (`SupervisorOptions.textInput`).
    var textInput = false

    /// The bytes the handler reads on stdin: the payload's JSON, or with
    /// `textInput` the text of a JSON-string payload and a newline.
    func input(_ payload: String) -> [UInt8] {
        if textInput, case .string(let text)? = try? JSON.parse(payload) { return Array((text + "\n").utf8) }
        return Array(payload.utf8)
    }

    /// Also echo each line the handler writes (stdout and stderr) to this
    /// process's stderr, prefixed `[task ID KIND] ` (`supervise --log-output`).
    var logOutput = false

    /// Runs the command for `task`. `tick` is called about every `tickInterval`
    /// seconds while it runs; when it returns false (stop at once) the group is
    /// killed and the attempt reported as aborted.
    func run(_ task: ClaimedTask, extraEnv: [String], tick: () -> Bool, tickInterval: Double) -> Outcome {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard taskq_pipe_cloexec(&inPipe) == 0, taskq_pipe_cloexec(&outPipe) == 0, taskq_pipe_cloexec(&errPipe) == 0 else {
            return .failed("cannot create pipes for the handler: \(String(cString: strerror(errno)))")
        }
        let argv = ["/bin/sh", "-c", command]
        let env = environment + extraEnv
        var pid: pid_t = 0
        // Hold the worker's parent-death signal (SIGUSR2, see Worker.run) from the
        // spawn until the new group is recorded: arriving in between, its handler
        // would exit without killing the group and leave the handler orphaned. (The
        // child starts with an empty signal mask: taskq_spawn sets it.)
        taskq_block_signal(SIGUSR2, 1)
        let rc = withCStrings(argv) { cargv in
            withCStrings(env) { cenv in
                let closeFDs = [inPipe[1], outPipe[0], errPipe[0]]
                return taskq_spawn(&pid, "/bin/sh", cargv, cenv, 0, 1, inPipe[0], outPipe[1], errPipe[1], closeFDs, Int32(closeFDs.count))
            }
        }
        // From here on the worker's parent-death handler kills this group too.
        if rc == 0 { taskq_set_handler_pgid(pid) }
        taskq_block_signal(SIGUSR2, 0)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        if rc != 0 {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            return .failed("cannot start /bin/sh: \(String(cString: strerror(rc)))")
        }
        defer { taskq_set_handler_pgid(0) }

        let pidfd = taskq_pidfd_open(pid)
        var stdinFD: Int32 = inPipe[1]
        _ = fcntl(stdinFD, F_SETFL, fcntl(stdinFD, F_GETFL) | O_NONBLOCK)
        let payload = input(task.payload)
        var written = 0
        if payload.isEmpty { close(stdinFD); stdinFD = -1 }

        var output: [UInt8] = []
        var overflow = false
        var errTail: [UInt8] = []
        var echo = logOutput ? LineEcho(prefix: "[task \(task.id) \(task.kind)] ") : nil
        var outOpen = true, errOpen = true, exited = false
        var status: Int32 = 0
        let start = System.monotonic()
        let deadline = task.timeout.map { start + $0 }
        var nextTick = start + tickInterval
        var abortReason: String?
        var timedOut = false
        var buf = [UInt8](repeating: 0, count: 65536)

        while outOpen || errOpen || !exited {
            if !exited, pidfd < 0 {
                // No pidfd (old kernel): notice the exit by polling waitpid.
                if waitpid(pid, &status, WNOHANG) == pid { exited = true; killGroup(pid) }
            }
            var fds: [pollfd] = []
            if outOpen { fds.append(pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0)) }
            if errOpen { fds.append(pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)) }
            if stdinFD >= 0 { fds.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
            if !exited && pidfd >= 0 { fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
            let now = System.monotonic()
            var wait = nextTick - now
            if let d = deadline { wait = min(wait, d - now) }
            if pidfd < 0 && !exited { wait = min(wait, 0.01) }
            let n = poll(&fds, nfds_t(fds.count), Int32(max(0, wait) * 1000) + 1)
            if n < 0 && errno != EINTR { break }
            for f in fds where f.revents != 0 {
                if f.fd == outPipe[0] || f.fd == errPipe[0] {
                    let r = read(f.fd, &buf, buf.count)
                    if r <= 0 {
                        if r == 0 || (errno != EINTR && errno != EAGAIN) {
                            if f.fd == outPipe[0] { outOpen = false } else { errOpen = false }
                            echo?.end(stream: f.fd == outPipe[0] ? 0 : 1)
                        }
                        continue
                    }
                    echo?.add(buf[0..<r], stream: f.fd == outPipe[0] ? 0 : 1)
                    if f.fd == outPipe[0] {
                        if output.count + r <= Self.maxResultBytes {
                            output += buf[0..<r]
                        } else if !overflow {
                            // Past the limit the attempt has failed: stop the handler now
                            // rather than read (and drop) whatever more it writes.
                            overflow = true
                            killGroup(pid)
                        }
                    } else {
                        errTail += buf[0..<r]
                        if errTail.count > 4 * Self.stderrTailBytes { errTail.removeFirst(errTail.count - Self.stderrTailBytes) }
                    }
                } else if f.fd == stdinFD {
                    if f.revents & Int16(POLLOUT) != 0 {
                        let r = payload.withUnsafeBytes { raw in write(stdinFD, raw.baseAddress! + written, payload.count - written) }
                        if r > 0 { written += r }
                        if r < 0 && errno != EAGAIN && errno != EINTR { written = payload.count }
                    } else {
                        written = payload.count // POLLERR/POLLHUP: the handler closed stdin
                    }
                    if written >= payload.count { close(stdinFD); stdinFD = -1 }
                } else if f.fd == pidfd {
                    if waitpid(pid, &status, 0) == pid { exited = true }
                    // The shell is gone: anything it left behind in its group goes too,
                    // and its pipes reach EOF once those processes are dead.
                    killGroup(pid)
                }
            }
            let t = System.monotonic()
            if let d = deadline, t >= d, abortReason == nil {
                abortReason = "timed out after \(formatDuration(task.timeout!)) (its process group was killed)"
                timedOut = true
                killGroup(pid)
            }
            if t >= nextTick {
                nextTick = t + tickInterval
                if !tick(), abortReason == nil {
                    abortReason = "aborted: the worker is stopping now"
                    killGroup(pid)
                }
            }
        }
        if !exited { killGroup(pid); waitpid(pid, &status, 0) }
        echo?.end(stream: 0)
        echo?.end(stream: 1)
        if stdinFD >= 0 { close(stdinFD) }
        if pidfd >= 0 { close(pidfd) }
        close(outPipe[0]); close(errPipe[0])

        if overflow {
            return .failed("handler wrote more than \(Self.maxResultBytes >> 20) MiB to stdout (the result limit): its process group was killed and the output discarded")
        }
        if let abortReason { return .failed(abortReason + stderrSuffix(errTail), timedOut: timedOut) }
        if status == 0 { return .succeeded(output, stderr: stderrText(errTail)) }
        var how = System.describe(waitStatus: status)
        let code = (status >> 8) & 0xff
        if status & 0x7f == 0 && code > 128 && code < 160 {
            // /bin/sh reports a command it ran that died of signal N as exit 128+N.
            how += " (a command in it was killed by signal \(code - 128) (\(System.signalName(code - 128))))"
        }
        let badData = status & 0x7f == 0 && code == Self.badDataStatus
        if badData { how += " " + Self.notRetried }
        return .failed("handler " + how + stderrSuffix(errTail), badData: badData)
    }

    private func killGroup(_ pgid: pid_t) { kill(-pgid, SIGKILL) }

    /// The end of stderr as kept: its last `stderrTailBytes` ("…" first when there
    /// was more), trailing blank space dropped; nil when that leaves nothing.
    private func stderrText(_ tail: [UInt8]) -> String? {
        var t = tail.suffix(Self.stderrTailBytes)
        while let last = t.last, last == 10 || last == 13 || last == 32 { t.removeLast() }
        if t.isEmpty { return nil }
        return (tail.count > Self.stderrTailBytes ? "…" : "") + String(decoding: t, as: UTF8.self)
    }

    /// The end of stderr for a failed attempt's one-line error.
    private func stderrSuffix(_ tail: [UInt8]) -> String {
        stderrText(tail).map { "; stderr: " + $0.replacingNewlines() } ?? ""
    }
}

/// `--log-output`: a handler's output, line by line, each line prefixed and written
/// to stderr with one write (so lines of workers sharing the terminal do not mix).
/// Stdout and stderr keep separate partial lines.
struct LineEcho {
    let prefix: [UInt8]
    private var partial: [[UInt8]] = [[], []]
    /// A line longer than this is echoed in pieces rather than held.
    private static let maxLine = 16384

    init(prefix: String) { self.prefix = Array(prefix.utf8) }

    mutating func add(_ bytes: ArraySlice<UInt8>, stream: Int) {
        var rest = bytes
        while let nl = rest.firstIndex(of: 10) {
            emit(partial[stream] + rest[rest.startIndex...nl])
            partial[stream] = []
            rest = rest[(nl + 1)...]
        }
        partial[stream] += rest
        if partial[stream].count > Self.maxLine { emit(partial[stream] + [10]); partial[stream] = [] }
    }

    /// The stream ended: a last line without its newline is echoed with one.
    mutating func end(stream: Int) {
        if !partial[stream].isEmpty { emit(partial[stream] + [10]); partial[stream] = [] }
    }

    private func emit(_ line: [UInt8]) {
        let all = prefix + line
        var off = 0
        all.withUnsafeBytes { raw in
            while off < raw.count {
                let n = write(2, raw.baseAddress! + off, raw.count - off)
                if n < 0 { if errno == EINTR { continue }; return }
                off += n
            }
        }
    }
}

extension String {
    /// One line for a message: newlines shown as " ⏎ ".
    func replacingNewlines() -> String {
        split(separator: "\n", omittingEmptySubsequences: true).joined(separator: " ⏎ ")
    }
}

/// Calls `body` with a NULL-terminated C array of C strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var ptrs: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    ptrs.append(nil)
    defer { for p in ptrs { free(p) } }
    return ptrs.withUnsafeBufferPointer { body($0.baseAddress!) }
}
