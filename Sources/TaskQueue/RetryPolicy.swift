/// When a failed attempt runs again: exponential backoff with jitter.
/// Attempt n (1-based) waits base·2^(n-1) seconds, capped at `cap`, times a random
/// factor in [0.5, 1.0] so tasks that failed together do not retry together.
public struct RetryPolicy: Sendable, Equatable {
    /// Delay before the second attempt, in seconds. Default 1.
    public var base: Double
    /// Longest delay, in seconds. Default 300.
    public var cap: Double

    public init(base: Double = 1, cap: Double = 300) {
        self.base = base
        self.cap = cap
    }

    /// The delay after attempt `attempt` (1-based) failed.
    public func delay(afterAttempt attempt: Int64) -> Double {
        let exp = min(Double(max(0, attempt - 1)), 62)
        let raw = min(cap, base * pow2(exp))
        return raw * Double.random(in: 0.5...1.0)
    }

    /// This policy with the task's own backoff (set at enqueue, or by its kind's
    /// policy) where it has one. The task's own base raises this policy's cap when
    /// the cap is shorter: `--backoff-base 10m` means a first wait of 10 minutes
    /// under a supervisor whose cap is the default 5.
    package func applying(_ task: ClaimedTask) -> RetryPolicy {
        let b = task.backoffBase ?? base
        return RetryPolicy(base: b, cap: task.backoffCap ?? (task.backoffBase == nil ? cap : max(cap, b)))
    }

    /// The outcome for a failed attempt: retry later, or give up when attempts are
    /// spent or the handler failed the task for good (`permanent`: a shell handler's
    /// exit 65, a Swift handler's thrown `TaskQueueError.badData`).
    package func outcome(for task: ClaimedTask, error: String, permanent: Bool = false, now: Timestamp) -> TaskOutcome.Result {
        if permanent || task.attempt >= task.maxAttempts { return .failed(error: error, retryAt: nil) }
        return .failed(error: error, retryAt: now.adding(seconds: applying(task).delay(afterAttempt: task.attempt)))
    }

    /// The outcome for an attempt whose worker crashed: as `outcome(for:)` when
    /// `policy` is retry; ended failed at once when it is fail.
    package func crashOutcome(for task: ClaimedTask, error: String, policy: CrashPolicy, now: Timestamp) -> TaskOutcome.Result {
        if policy == .fail { return .failed(error: error + "; not retried (on-crash fail)", retryAt: nil) }
        return outcome(for: task, error: error, now: now)
    }

    private func pow2(_ e: Double) -> Double {
        var r = 1.0
        for _ in 0..<Int(e) { r *= 2 }
        return r
    }
}
