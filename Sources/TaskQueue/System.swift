import CTaskQSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Facts about this machine and its processes, read from /proc. Linux only.
public enum System {
    /// The name this machine goes by in the processes table: `TASKQ_HOST_ID` when
    /// set, else the host name.
    public static let hostName: String = {
        if let id = getenv("TASKQ_HOST_ID"), id.pointee != 0 { return String(cString: id) }
        var buf = [CChar](repeating: 0, count: 256)
        return gethostname(&buf, buf.count) == 0 ? String(cString: buf) : "localhost"
    }()

    /// What this process's pids are relative to: the kernel's boot id (new at every
    /// boot) and, in a container, its PID namespace (containers on one kernel share
    /// the boot id and may share a host name, but each numbers its own pids).
    /// Stored as `processes.boot_id`. Another process's pid is checked here only when
    /// its host name and this value are both this process's (`isLocal`).
    public static let bootID: String = {
        let boot = readFile("/proc/sys/kernel/random/boot_id")?.trimmingCharacters(in: " \n") ?? ""
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self/ns/pid", &buf, buf.count - 1)
        let namespace = n > 0 ? String(cString: buf) : ""
        // The initial PID namespace has a fixed inode (PROC_PID_INIT_INO): a machine
        // without containers keeps the plain boot id.
        return namespace.isEmpty || namespace == "pid:[4026531836]" ? boot : boot + "/" + namespace
    }()

    /// Whether a process registered with `host` and `bootID` runs where this one
    /// does, so its pid can be looked up in /proc here. Same host name alone is not
    /// enough: two containers, or two clones of one machine, can share it.
    public static func isLocal(host: String, bootID: String) -> Bool {
        host == hostName && bootID == self.bootID
    }

    /// CPUs this process may use (its affinity mask), like Python's os.process_cpu_count().
    public static var cpuCount: Int { Int(taskq_cpu_count()) }

    /// The running executable's absolute path (argv[0] may be relative or a bare name).
    public static var executablePath: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? String(cString: buf) : CommandLine.arguments[0]
    }

    /// Field 22 of /proc/PID/stat (start time in clock ticks since boot), or nil if
    /// there is no such process. With the pid it names one process for this boot.
    public static func startTicks(of pid: Int32) -> Int64? {
        statFields(pid).flatMap { $0.count > 19 ? Int64($0[19]) : nil }
    }

    /// Whether the process recorded as (pid, startTicks, bootID) on this host is
    /// still running. Zombies count as dead.
    public static func isAlive(pid: Int32, startTicks: Int64, bootID: String) -> Bool {
        if bootID != self.bootID { return false }
        guard let f = statFields(pid), f.count > 19 else { return false }
        if f[0] == "Z" || f[0] == "X" { return false }
        return startTicks == 0 || Int64(f[19]) == startTicks
    }

    /// Whether `pid` is stopped (SIGSTOP, SIGTSTP, a debugger): state T or t.
    public static func isStopped(_ pid: Int32) -> Bool {
        guard let f = statFields(pid), let state = f.first else { return false }
        return state == "T" || state == "t"
    }

    /// SIGKILLs every process whose session id is `sid`: a worker's session holds
    /// the worker and every handler process group it started. With
    /// `sparingLeader`, the session leader (the worker itself) is left alone and
    /// only its handlers die. Returns how many were signalled.
    @discardableResult
    public static func killSession(_ sid: Int32, sparingLeader: Bool = false) -> Int {
        guard sid > 1, let dir = opendir("/proc") else { return 0 }
        defer { closedir(dir) }
        var killed = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            guard let pid = Int32(name), pid > 1, pid != getpid(), !(sparingLeader && pid == sid) else { continue }
            if sessionID(of: pid) == sid {
                if kill(pid, SIGKILL) == 0 { killed += 1 }
            }
        }
        return killed
    }

    /// The session id of `pid` (the 4th field after the command name in
    /// /proc/PID/stat), or nil. Parsed in place from one read into a stack
    /// buffer: `killSession` asks it of every process on the machine, at every
    /// worker exit.
    static func sessionID(of pid: Int32) -> Int32? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 512) { buf -> Int32? in
            let n = read(fd, buf.baseAddress, buf.count)
            guard n > 0 else { return nil }
            // The command name may hold spaces and ')': count from its last ')'
            // (it is at most 15 bytes, so 512 reach the session field).
            var j = n - 1
            while j >= 0 && buf[j] != UInt8(ascii: ")") { j -= 1 }
            guard j >= 0 else { return nil }
            // ") state ppid pgrp session …": each space starts the next field.
            var field = -1
            var value: Int32 = 0
            for k in (j + 1)..<n {
                let c = buf[k]
                if c == UInt8(ascii: " ") {
                    if field == 3 { return value }
                    field += 1
                } else if field == 3 {
                    guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
                    value = value &* 10 &+ Int32(c - UInt8(ascii: "0"))
                }
            }
            return nil
        }
    }

    /// Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, ...].
    package static func statFields(_ pid: Int32) -> [Substring]? {
        guard let text = readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Seconds on a monotonic clock, for deadlines and durations.
    public static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// A readable name for a signal number.
    public static func signalName(_ sig: Int32) -> String {
        let names: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL",
                                      SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL",
                                      SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
                                      SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ"]
        return names[sig] ?? "signal \(sig)"
    }

    /// Describes a waitpid status: "exit status 3", "killed by signal 9 (SIGKILL)".
    public static func describe(waitStatus status: Int32) -> String {
        if status & 0x7f == 0 { return "exit status \((status >> 8) & 0xff)" }
        let sig = status & 0x7f
        return "killed by signal \(sig) (\(signalName(sig)))"
    }

    /// Where supervisors and workers report what they do (swift-log, label "taskq").
    /// A program that embeds them routes it with `LoggingSystem.bootstrap`; the
    /// taskq CLI installs `OneLineLogHandler`, which writes each message as one line
    /// on stderr, as its own messages are.
    nonisolated(unsafe) public static var logger = Logger(label: "taskq")

    /// Logs `line` through `logger`.
    public static func log(_ line: String, level: Logger.Level = .info) {
        logger.log(level: level, "\(line)")
    }

    /// Writes a line to stderr in one write() call.
    public static func writeLine(_ line: String) {
        var s = line
        if !s.hasSuffix("\n") { s += "\n" }
        s.withUTF8 { buf in _ = write(2, buf.baseAddress, buf.count) }
    }
}

/// A log handler that writes each message as it is, one line on stderr in one
/// write() call (lines of concurrent processes never interleave): the taskq CLI's
/// format. Messages below `logLevel` are dropped.
public struct OneLineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    public init(label: String) {}

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        System.writeLine("\(event.message)")
    }
}

extension String {
    /// The string without leading and trailing characters from `set`.
    public func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
