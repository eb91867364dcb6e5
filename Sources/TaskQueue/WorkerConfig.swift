import CTaskQSystem
#if canImport(Glibc)
import Glibc
#endif

/// Everything a worker process needs. Its supervisor writes it, as JSON, into an
/// anonymous file (a memfd) that the worker inherits, and names that descriptor in a
/// short argument: `<exe> __taskq-worker '{"database":"/abs/taskq.db","config_fd":5}'`
/// (`launchArgument`). Not the whole configuration on the command line: the kernel
/// refuses an argument over 128 KiB (E2BIG), which thousands of handlers, or one long
/// command, reach. The database comes first so that `ps` shows which one a worker serves.
public struct WorkerConfig: Sendable, Equatable {
    /// The database as the supervisor names it: a SQLite file's absolute path or a
    /// PostgreSQL connection string (it reaches handlers as `TASKQ_DB`).
    public var database: String
    /// `normal` or `full`; empty: the engine's default.
    public var synchronous: String = ""
    public var busyTimeout: Double = 10
    public var supervisorID: Int64
    public var supervisorPID: Int32
    /// Queues served; nil = all.
    public var queues: [String]?
    /// kind → shell command.
    public var commands: [String: String] = [:]
    /// Kinds whose command gets a JSON-string payload as its text (`SupervisorOptions.textInput`).
    public var textInput: [String] = []
    /// Seconds a claim lives without a heartbeat.
    public var lease: Double = 30
    public var retry: RetryPolicy = .init()
    /// Exit when no task is ready instead of waiting for more.
    public var untilEmpty: Bool = false
    /// Largest number of tasks claimed at once for Swift handlers (shell handlers claim
    /// one). Reached only while batches come back full and run in under 10 ms.
    public var maxBatch: Int = 512
    /// Echo each line a command handler writes to the worker's stderr (`supervise --log-output`).
    public var logOutput: Bool = false
    /// Inherited descriptor of the supervisor's CurrentTaskSlot for this worker (-1: none).
    public var currentTaskFD: Int32 = -1

    /// The argument that marks a worker process.
    public static let argument = "__taskq-worker"

    public init(database: String, supervisorID: Int64, supervisorPID: Int32) {
        self.database = database
        self.supervisorID = supervisorID
        self.supervisorPID = supervisorPID
    }

    public var json: String {
        var o = JSONObjectWriter()
        o.add("database", database)
        o.add("synchronous", synchronous)
        o.add("busy_timeout", busyTimeout)
        o.add("supervisor_id", supervisorID)
        o.add("supervisor_pid", Int64(supervisorPID))
        if let q = queues { o.addRaw("queues", "[" + q.map(JSON.quote).joined(separator: ",") + "]") }
        var c = JSONObjectWriter()
        for (k, v) in commands.sorted(by: { $0.key < $1.key }) { c.add(k, v) }
        o.addRaw("commands", c.text)
        if !textInput.isEmpty { o.addRaw("text_input", "[" + textInput.map(JSON.quote).joined(separator: ",") + "]") }
        o.add("lease", lease)
        o.add("backoff_base", retry.base)
        o.add("backoff_cap", retry.cap)
        o.add("until_empty", untilEmpty)
        o.add("max_batch", maxBatch)
        o.add("current_task_fd", Int64(currentTaskFD))
        o.add("log_output", logOutput)
        return o.text
    }

    public init(json: String) throws {
        guard let v = try? JSON.parse(json), let db = v["database"]?.stringValue, let sid = v["supervisor_id"]?.intValue,
              let spid = v["supervisor_pid"]?.intValue else {
            throw Self.bad
        }
        self.init(database: db, supervisorID: sid, supervisorPID: Int32(truncatingIfNeeded: spid))
        synchronous = v["synchronous"]?.stringValue ?? ""
        busyTimeout = v["busy_timeout"]?.doubleValue ?? 10
        if case .array(let q)? = v["queues"] { queues = q.compactMap(\.stringValue) }
        if case .object(let members)? = v["commands"] {
            for m in members { commands[m.key] = m.value.stringValue }
        }
        if case .array(let t)? = v["text_input"] { textInput = t.compactMap(\.stringValue) }
        lease = v["lease"]?.doubleValue ?? 30
        retry = RetryPolicy(base: v["backoff_base"]?.doubleValue ?? 1, cap: v["backoff_cap"]?.doubleValue ?? 300)
        if case .bool(let b)? = v["until_empty"] { untilEmpty = b }
        maxBatch = Int(v["max_batch"]?.intValue ?? 512)
        currentTaskFD = Int32(truncatingIfNeeded: v["current_task_fd"]?.intValue ?? -1)
        if case .bool(let b)? = v["log_output"] { logOutput = b }
    }

    private static let bad = TaskQueueError.usage("bad worker configuration (workers are started by 'taskq supervise')")

    /// Supervisor side: a new memfd holding this configuration, for one worker to
    /// inherit (not close-on-exec: the supervisor closes its copy once the worker is
    /// spawned, so no other child gets it). -1 with errno set if the system refuses.
    package func descriptor() -> Int32 {
        let fd = taskq_memfd("taskq-worker-config")
        if fd < 0 { return -1 }
        let bytes = Array(json.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(written)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { let e = n < 0 ? errno : EIO; close(fd); errno = e; return -1 }
            written += n
        }
        return fd
    }

    /// The worker's argument after `__taskq-worker`: where the database is (for `ps`;
    /// never a password: the configuration itself is in the descriptor) and the
    /// descriptor to read.
    package static func launchArgument(database: String, descriptor fd: Int32) -> String {
        var o = JSONObjectWriter()
        o.add("database", database)
        o.add("config_fd", Int64(fd))
        return o.text
    }

    /// Worker side: reads the configuration from the descriptor `launchArgument`
    /// names, and closes it (handlers must not inherit it).
    public init(launchArgument: String) throws {
        guard let v = try? JSON.parse(launchArgument), let n = v["config_fd"]?.intValue, n > 2, n <= Int32.max else { throw Self.bad }
        let fd = Int32(n)
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(bytes.count)) }
            if got < 0 && errno == EINTR { continue }
            if got < 0 { throw TaskQueueError.usage("cannot read the worker configuration from descriptor \(fd): \(String(cString: strerror(errno)))") }
            if got == 0 { break }
            bytes += chunk[0..<got]
        }
        try self.init(json: String(decoding: bytes, as: UTF8.self))
    }
}
