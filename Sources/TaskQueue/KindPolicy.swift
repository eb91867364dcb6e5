/// Retry policy defaults for every task of one kind (`taskq kind set`): used for
/// tasks enqueued without their own setting. The store copies them into the task
/// when it is enqueued, so a task row always shows the policy it runs under, and a
/// change applies to tasks enqueued afterwards. `nil` fields are not set for the
/// kind: the task gets the built-in default (3 attempts) or, for backoff and
/// on-crash, the supervisor's setting.
public struct KindPolicy: Sendable, Equatable {
    /// Attempts before a task ends `failed` (1 to 1,000,000).
    public var maxAttempts: Int64?
    /// Backoff before the second attempt, in seconds; doubles per attempt.
    public var backoffBase: Double?
    /// Longest backoff, in seconds.
    public var backoffCap: Double?
    /// What a crashed worker means for the task.
    public var onCrash: CrashPolicy?

    public init(maxAttempts: Int64? = nil, backoffBase: Double? = nil, backoffCap: Double? = nil, onCrash: CrashPolicy? = nil) {
        self.maxAttempts = maxAttempts
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.onCrash = onCrash
    }

    /// True when no field is set.
    public var isEmpty: Bool { self == KindPolicy() }

    /// Throws a usage error naming the first bad field; with `asOptions`, named
    /// as the command-line option (`--max-attempts`) rather than in words.
    public func validate(asOptions: Bool = false) throws {
        func name(_ f: Field) -> String { asOptions ? "--" + f.rawValue : f.rawValue.replacing("-", with: " ") }
        if let m = maxAttempts, m < 1 || m > 1_000_000 {
            throw TaskQueueError.usage("\(name(.maxAttempts)) must be between 1 and 1000000, not \(m)")
        }
        for (f, value) in [(Field.backoffBase, backoffBase), (.backoffCap, backoffCap)] {
            if let v = value, !(v >= 0 && v <= 31_536_000) {
                throw TaskQueueError.usage("\(name(f)) must be between 0 and 1 year (365d), not \(formatDuration(v))")
            }
        }
        if let b = backoffBase, let c = backoffCap, c < b {
            throw TaskQueueError.usage("\(name(.backoffCap)) (\(formatDuration(c))) is shorter than \(name(.backoffBase)) (\(formatDuration(b)))")
        }
    }

    /// The policy with `fields` unset.
    public func clearing(_ fields: Set<Field>) -> KindPolicy {
        var p = self
        for f in fields {
            switch f {
            case .maxAttempts: p.maxAttempts = nil
            case .backoffBase: p.backoffBase = nil
            case .backoffCap: p.backoffCap = nil
            case .onCrash: p.onCrash = nil
            }
        }
        return p
    }

    /// `self`'s fields where set, else `other`'s.
    public func overriding(_ other: KindPolicy) -> KindPolicy {
        KindPolicy(maxAttempts: maxAttempts ?? other.maxAttempts, backoffBase: backoffBase ?? other.backoffBase,
                   backoffCap: backoffCap ?? other.backoffCap, onCrash: onCrash ?? other.onCrash)
    }
}

extension EnqueueOptions {
    /// The retry policy a task is stored with, given its kind's policy (nil: the
    /// kind has none): each of its own options, else the kind's, else 3 attempts.
    /// Backoff and on-crash left unset here fall to the supervisor's flags when the
    /// task runs. A backoff half the task gives wins over the kind's other half: its
    /// own base raises the kind's shorter cap, its own cap lowers the kind's longer
    /// base. Every producer stores this (the task row shows the policy it runs under).
    public func storedPolicy(kind k: KindPolicy?) -> KindPolicy {
        KindPolicy(maxAttempts: maxAttempts ?? k?.maxAttempts ?? 3,
                   backoffBase: backoffBase ?? k?.backoffBase.map { base in backoffCap.map { min(base, $0) } ?? base },
                   backoffCap: backoffCap ?? k?.backoffCap.map { cap in backoffBase.map { max(cap, $0) } ?? cap },
                   onCrash: onCrash ?? k?.onCrash)
    }
}

/// The store verbs behind per-kind policies. A backend that keeps them conforms
/// to this capability protocol too.
package protocol KindPolicyStore: AnyObject {
    /// Merges `policy` into the kind's row (fields that are nil stay as they
    /// were; `clear` names fields to unset) and returns the row as stored. A row
    /// left with no field set is deleted.
    func setKindPolicy(_ kind: String, _ policy: KindPolicy, clear: Set<KindPolicy.Field>, now: Timestamp) throws -> KindPolicy

    /// Deletes the kind's row; false when there was none.
    func removeKindPolicy(_ kind: String) throws -> Bool

    /// Every kind with a policy, by kind.
    func kindPolicies() throws -> [(kind: String, policy: KindPolicy)]
}

extension KindPolicy {
    /// A field of the policy, for `clear`.
    public enum Field: String, Sendable, CaseIterable, Hashable {
        case maxAttempts = "max-attempts", backoffBase = "backoff-base", backoffCap = "backoff-cap", onCrash = "on-crash"
    }
}

extension Queue {
    private var kindStore: any KindPolicyStore {
        get throws { try capability((any KindPolicyStore).self, "keep kind policies") }
    }

    /// Sets retry policy defaults for tasks of `kind` enqueued from now on: the
    /// given fields replace the kind's current ones, nil fields stay, and fields in
    /// `clear` go back to unset. Returns the kind's policy as stored.
    @discardableResult
    public func setKindPolicy(_ kind: String, _ policy: KindPolicy, clear: Set<KindPolicy.Field> = []) throws -> KindPolicy {
        try validateName(kind, what: "kind")
        try policy.validate()
        return try kindStore.setKindPolicy(kind, policy, clear: clear, now: .now())
    }

    /// Removes the kind's policy; false when it had none.
    @discardableResult
    public func removeKindPolicy(_ kind: String) throws -> Bool { try kindStore.removeKindPolicy(kind) }

    /// Every kind with a policy, sorted by kind.
    public func kindPolicies() throws -> [(kind: String, policy: KindPolicy)] { try kindStore.kindPolicies() }
}
