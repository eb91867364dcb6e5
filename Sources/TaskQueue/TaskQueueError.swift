/// The one error type taskq throws for things a user can cause or fix: a bad
/// argument, a missing database, a lock held too long, a full disk.
///
/// `message` is one line written for the person who reads it in a terminal or in
/// a task's `last_error` column. `code` says what kind of failure it is; the CLI
/// maps it to an exit status (see `exitCode`).
public struct TaskQueueError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is. A struct over a private enum, so codes can be
    /// added without breaking callers that switch over them with a default.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Kind: String { case usage, badData, notFound, busy, unavailable, failed, notFinished, noSpace }
        fileprivate let kind: Kind
        /// The caller used an option or argument wrongly (exit 64).
        public static let usage = Code(kind: .usage)
        /// Input data was malformed: invalid JSON, a bad batch line, not a database (exit 65).
        public static let badData = Code(kind: .badData)
        /// No such database, task or directory (exit 66).
        public static let notFound = Code(kind: .notFound)
        /// The database stayed locked past the busy timeout (exit 69).
        public static let busy = Code(kind: .busy)
        /// The database cannot be used: read-only, newer schema, I/O error (exit 69).
        public static let unavailable = Code(kind: .unavailable)
        /// An operation or task failed (exit 1).
        public static let failed = Code(kind: .failed)
        /// The task has not finished yet (exit 75).
        public static let notFinished = Code(kind: .notFinished)
        /// The disk is full (exit 1).
        public static let noSpace = Code(kind: .noSpace)
        public var description: String { kind.rawValue }
    }

    public let code: Code
    public let message: String
    /// The lower-level failure this error reports, if any: for a failed SQLite call
    /// the store's `SQLiteError` (result code, extended code, SQLite's message, the
    /// statement), for code that decides by result code rather than by message text.
    /// Nil for taskq's own checks. Not compared by `==`.
    public let underlying: (any Error & Sendable)?
    /// Whether the same operation may succeed when tried again later with nothing
    /// changed but time: a lock held past the busy timeout, a full disk, an I/O
    /// error. False for what stays wrong until someone acts: a bad argument, a
    /// missing, read-only or corrupt database, a refused constraint.
    public let isTransient: Bool

    /// `isTransient` defaults to true for `.busy` and `.noSpace`, else false.
    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil, isTransient: Bool? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.isTransient = isTransient ?? (code == .busy || code == .noSpace)
    }

    /// Same code, same message.
    public static func == (a: TaskQueueError, b: TaskQueueError) -> Bool {
        a.code == b.code && a.message == b.message
    }

    public var description: String { message }

    /// The process exit status for this error, following sysexits.h where one fits.
    public var exitCode: Int32 {
        switch code.kind {
        case .usage: return 64
        case .badData: return 65
        case .notFound: return 66
        case .busy, .unavailable: return 69
        case .notFinished: return 75
        case .failed, .noSpace: return 1
        }
    }

    public static func usage(_ m: String) -> TaskQueueError { .init(.usage, m) }
    public static func badData(_ m: String) -> TaskQueueError { .init(.badData, m) }
    public static func notFound(_ m: String) -> TaskQueueError { .init(.notFound, m) }
    public static func busy(_ m: String) -> TaskQueueError { .init(.busy, m) }
    public static func unavailable(_ m: String) -> TaskQueueError { .init(.unavailable, m) }
    public static func failed(_ m: String) -> TaskQueueError { .init(.failed, m) }
    public static func noSpace(_ m: String) -> TaskQueueError { .init(.noSpace, m) }
}
