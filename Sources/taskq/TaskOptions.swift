import ArgumentParser
import TaskQueue

/// The options of a task that `enqueue`, `map` and `schedule add` all take: where
/// it runs, its time limit and its retry policy. Options left out come from the
/// kind's policy (`taskq kind set`), else the built-in defaults (see `EnqueueOptions`).
struct TaskOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Queue of the task.", valueName: "name"))
    var queue: String = "default"

    @Option(parsing: .unconditional, help: ArgumentHelp("Higher runs first; may be negative.", valueName: "n"))
    var priority: Int64 = 0

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Time limit per attempt (seconds, or 90s, 5m…); the handler's process group is killed when it passes. Default: none.",
        valueName: "duration"))
    var timeout: String?

    @OptionGroup var retry: RetryOptions

    func validate() throws { _ = try options() }

    /// The options as given; throws a `ValidationError` (exit 64) naming the bad one.
    func options() throws -> EnqueueOptions {
        let p = try retry.policy()
        var o = EnqueueOptions(queue: queue, priority: priority, maxAttempts: p.maxAttempts, onCrash: p.onCrash,
                               backoffBase: p.backoffBase, backoffCap: p.backoffCap)
        o.timeout = try timeout.map { try seconds($0, option: "--timeout") }
        try asUsageError { try o.validate(asOptions: true) }
        return o
    }
}

/// A retry policy on the command line: the task options of `enqueue`, `map` and
/// `schedule add`, and what `kind set` sets for a kind. Left out: not set.
struct RetryOptions: ParsableArguments {
    @Option(name: .customLong("max-attempts"), parsing: .unconditional, help: ArgumentHelp(
        "Attempts before a task ends failed (1 to 1000000).", valueName: "n"))
    var maxAttempts: Int64?

    @Option(name: .customLong("backoff-base"), parsing: .unconditional, help: ArgumentHelp(
        "Wait before the 2nd attempt, doubling for each later one, with jitter (seconds, or 500ms, 30s, 5m…).",
        valueName: "duration"))
    var backoffBase: String?

    @Option(name: .customLong("backoff-cap"), parsing: .unconditional, help: ArgumentHelp(
        "Longest wait between attempts.", valueName: "duration"))
    var backoffCap: String?

    @Option(name: .customLong("on-crash"), parsing: .unconditional, help: ArgumentHelp(
        "retry or fail: what a crashed worker (killed, lost) means for a task; fail is for work that must not run twice.",
        valueName: "policy"))
    var onCrash: String?

    /// The policy as given (unchecked ranges: `KindPolicy.validate`); exit 64 for
    /// a value that does not parse.
    func policy() throws -> KindPolicy {
        KindPolicy(maxAttempts: maxAttempts,
                   backoffBase: try backoffBase.map { try seconds($0, option: "--backoff-base") },
                   backoffCap: try backoffCap.map { try seconds($0, option: "--backoff-cap") },
                   onCrash: try onCrash.map(crashPolicy))
    }
}

/// `retry` or `fail`, for --on-crash (exit 64 otherwise).
func crashPolicy(_ text: String) throws -> CrashPolicy {
    guard let p = CrashPolicy(rawValue: text) else { throw ValidationError("--on-crash must be retry or fail, not '\(text)'") }
    return p
}
