/// A Swift handler: gets the claimed task, returns the result bytes, or throws to
/// fail the attempt (the error's description is stored as `last_error`).
public typealias TaskFunction = (ClaimedTask) throws -> [UInt8]

/// Which code runs for which task kind: shell commands and Swift functions.
public struct HandlerSet {
    /// kind → shell command (run with /bin/sh -c).
    public private(set) var commands: [String: String] = [:]
    /// kind → Swift function, run inside the worker process.
    public private(set) var functions: [String: TaskFunction] = [:]

    public init() {}

    /// Registers a shell command for `kind`. Registering a kind twice is a
    /// programming error.
    public mutating func command(_ kind: String, _ command: String) {
        precondition(commands[kind] == nil && functions[kind] == nil, "kind \(kind) registered twice")
        commands[kind] = command
    }

    /// Registers a Swift function for `kind`.
    public mutating func register(_ kind: String, _ function: @escaping TaskFunction) {
        precondition(commands[kind] == nil && functions[kind] == nil, "kind \(kind) registered twice")
        functions[kind] = function
    }

    /// Every kind with a handler, sorted.
    public var kinds: [String] { (Array(commands.keys) + Array(functions.keys)).sorted() }
}
