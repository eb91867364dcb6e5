#if canImport(Glibc)
import Glibc
#endif

/// How a supervisor ends, and what it takes as the end.
extension Supervisor {
    /// Exit statuses of `run`.
    public enum Exit {
        /// Every orderly stop.
        public static let stopped: Int32 = 0
        /// Another supervisor declared this one dead (it was stopped or stalled past
        /// its lease) and recovered its row; its workers were stopped as on SIGTERM.
        public static let leaseLost: Int32 = 1
        /// An error that retrying cannot heal: a worker stopped with
        /// `Worker.Exit.permanentFailure`, or a worker cannot be spawned at all.
        public static let permanentFailure: Int32 = 70
    }

    /// Whether starting a worker would fail the same way every time: the program or
    /// /proc is missing or not executable, its arguments or environment too long, no
    /// memfd in this kernel. Out of memory, processes or descriptors may heal.
    static func isPermanent(spawnError e: Int32) -> Bool {
        [E2BIG, ENOENT, ENOEXEC, EACCES, EPERM, ENOTDIR, ELOOP, ENAMETOOLONG, EISDIR, ENOSYS].contains(e)
    }

    /// `names` joined, or, past twenty, the first ten and how many more: a log line
    /// stays a line with thousands of handlers or queues.
    static func shortList(_ names: [String], _ separator: String, _ noun: String) -> String {
        names.count <= 20 ? names.joined(separator: separator)
            : names.prefix(10).joined(separator: separator) + " and \(names.count - 10) more \(noun)"
    }
}
