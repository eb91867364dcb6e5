/// Everything a worker process needs, passed by its supervisor as one JSON
/// argument (`<exe> __taskq-worker '<json>'`).
public struct WorkerConfig: Sendable, Equatable {
    /// Absolute path of the database.
    public var database: String
    public var synchronous: String = "normal"
    public var busyTimeout: Double = 10
    public var supervisorID: Int64
    public var supervisorPID: Int32
    /// Queues served; nil = all.
    public var queues: [String]?
    /// kind → shell command.
    public var commands: [String: String] = [:]
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
        let v = try JSON.parse(json)
        guard let db = v["database"]?.stringValue, let sid = v["supervisor_id"]?.intValue,
              let spid = v["supervisor_pid"]?.intValue else {
            throw TaskQueueError.usage("bad worker configuration (workers are started by 'taskq supervise')")
        }
        self.init(database: db, supervisorID: sid, supervisorPID: Int32(truncatingIfNeeded: spid))
        synchronous = v["synchronous"]?.stringValue ?? "normal"
        busyTimeout = v["busy_timeout"]?.doubleValue ?? 10
        if case .array(let q)? = v["queues"] { queues = q.compactMap(\.stringValue) }
        if case .object(let members)? = v["commands"] {
            for m in members { commands[m.key] = m.value.stringValue }
        }
        lease = v["lease"]?.doubleValue ?? 30
        retry = RetryPolicy(base: v["backoff_base"]?.doubleValue ?? 1, cap: v["backoff_cap"]?.doubleValue ?? 300)
        if case .bool(let b)? = v["until_empty"] { untilEmpty = b }
        maxBatch = Int(v["max_batch"]?.intValue ?? 512)
        currentTaskFD = Int32(truncatingIfNeeded: v["current_task_fd"]?.intValue ?? -1)
        if case .bool(let b)? = v["log_output"] { logOutput = b }
    }
}
