import ArgumentParser
import TaskQueue

/// The options of a task that `enqueue`, `map` and `schedule add` all take: where
/// it runs and its retry policy. Options left out come from the kind's policy
/// (`taskq kind set`), else the built-in defaults (see `EnqueueOptions`).
struct TaskOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Queue of the task.", valueName: "name"))
    var queue: String = "default"

    @Option(parsing: .unconditional, help: ArgumentHelp("Higher runs first; may be negative.", valueName: "n"))
    var priority: Int64 = 0

    @Option(name: .customLong("max-attempts"), parsing: .unconditional, help: ArgumentHelp(
        "Attempts before the task ends failed (1 to 1000000). Default: the kind's (taskq kind set), else 3 (for map: 1).", valueName: "n"))
    var maxAttempts: Int64?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Time limit per attempt (seconds, or 90s, 5m…); the handler's process group is killed when it passes. Default: none.",
        valueName: "duration"))
    var timeout: String?

    @Option(name: .customLong("backoff-base"), parsing: .unconditional, help: ArgumentHelp(
        "Wait before the 2nd attempt, doubling for each later one (with jitter). Default: the kind's, else the supervisor's (1s).",
        valueName: "duration"))
    var backoffBase: String?

    @Option(name: .customLong("backoff-cap"), parsing: .unconditional, help: ArgumentHelp(
        "Longest wait between attempts. Default: the kind's, else the supervisor's (5m).", valueName: "duration"))
    var backoffCap: String?

    @Option(name: .customLong("on-crash"), parsing: .unconditional, help: ArgumentHelp(
        "retry or fail: what a crashed worker (killed, lost) means for the task; fail is for work that must not run twice. Default: the kind's, else the supervisor's --on-crash for it, else retry.",
        valueName: "policy"))
    var onCrash: String?

    func validate() throws { _ = try options() }

    /// The options as given; throws a `ValidationError` (exit 64) naming the bad one.
    func options() throws -> EnqueueOptions {
        var o = EnqueueOptions(queue: queue, priority: priority, maxAttempts: maxAttempts)
        o.timeout = try timeout.map { try seconds($0, option: "--timeout") }
        o.onCrash = try onCrash.map(crashPolicy)
        o.backoffBase = try backoffBase.map { try seconds($0, option: "--backoff-base") }
        o.backoffCap = try backoffCap.map { try seconds($0, option: "--backoff-cap") }
        try asUsageError { try o.validate(asOptions: true) }
        return o
    }
}

/// `retry` or `fail`, for --on-crash (exit 64 otherwise).
func crashPolicy(_ text: String) throws -> CrashPolicy {
    guard let p = CrashPolicy(rawValue: text) else { throw ValidationError("--on-crash must be retry or fail, not '\(text)'") }
    return p
}
