/// What a store does after the fence accepted an outcome: the attempt history and
/// the dependants (`after`). Each store writes the rows its own way (the primitives);
/// which rows an outcome calls for, and the messages they carry, are decided once,
/// here (`settle`). Each primitive runs inside the caller's transaction.
package protocol OutcomeSettling {
    /// Copies the attempt that just ended into the attempt history.
    func keepAttempt(_ taskID: Int64, attempt: Int64, outcome: String, error: String?, now: Timestamp) throws

    /// `id` succeeded: each dependant waits for one fewer task, and runs now when it
    /// waits for none.
    func releaseDependants(of id: Int64, now: Timestamp) throws

    /// The tasks waiting for `id`, in id order.
    func dependants(of id: Int64) throws -> [Int64]

    /// Ends task `id` cancelled with `reason` if it is still queued; true when it was.
    /// (Its dependency rows stay: a retry makes it wait for them again.)
    func cancelIfQueued(_ id: Int64, reason: String, now: Timestamp) throws -> Bool
}

extension OutcomeSettling {
    /// After the fence accepted `o`: keeps a failed or released attempt in the
    /// history (not a batch's task that never started), and settles the dependants
    /// of a task that ended. `hasDependants`: whether any task waits for it (when
    /// false, the dependants are not even looked for).
    package func settle(_ o: TaskOutcome, hasDependants: Bool, now: Timestamp) throws {
        switch o.result {
        case .succeeded:
            if hasDependants { try releaseDependants(of: o.taskID, now: now) }
        case .failed(let error, let retryAt):
            try keepAttempt(o.taskID, attempt: o.attempt, outcome: o.failure, error: error, now: now)
            if retryAt == nil && hasDependants {
                try cancelDependants(of: o.taskID, reason: "task \(o.taskID), which it was to run after, failed", now: now)
            }
        case .released:
            if o.failure == TaskOutcome.notStarted { return }
            try keepAttempt(o.taskID, attempt: o.attempt, outcome: "released",
                            error: "put back without counting the attempt (its worker was stopping)", now: now)
        }
    }

    /// `id` ended failed or cancelled: every task waiting for it (and for those,
    /// transitively) ends cancelled, the first ones with `reason`. Returns their ids.
    @discardableResult
    package func cancelDependants(of id: Int64, reason: String, now: Timestamp) throws -> [Int64] {
        var cancelled: [Int64] = []
        var work = [(id, reason)]
        while let (dep, why) = work.popLast() {
            for d in try dependants(of: dep) where try cancelIfQueued(d, reason: why, now: now) {
                cancelled.append(d)
                work.append((d, Self.cancelledDependency(d)))
            }
        }
        return cancelled
    }

    /// Why a task waiting for `id` is cancelled when `id` was.
    package static func cancelledDependency(_ id: Int64) -> String {
        "task \(id), which it was to run after, was cancelled"
    }
}
