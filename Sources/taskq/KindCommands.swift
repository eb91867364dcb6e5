import ArgumentParser
import TaskQueue
import TaskQueueStores

struct KindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kind",
        abstract: "Retry policy per kind: max attempts, backoff, what a crash means.",
        discussion: """
            A kind's policy is the default for its tasks enqueued from then on, by any \
            producer (CLI, Swift library, schedules, map): an option given at enqueue wins, \
            and what neither sets comes from the supervisor (--backoff-base, --backoff-cap, \
            --on-crash KIND=...), else the built-in 3 attempts, 1s doubling up to 5m, \
            retry. The policy is copied into each task row when it is enqueued, so queued \
            tasks keep the policy they were enqueued with, and sqlite3 shows it: \
            SELECT id, max_attempts, backoff_base_s, backoff_cap_s, on_crash FROM tasks. \
            The policies themselves are the table kinds.

            Examples:
              taskq kind set email --max-attempts 10 --backoff-base 30s --backoff-cap 1h
              taskq kind set charge --on-crash fail --max-attempts 1
              taskq kind set email --unset backoff-cap
              taskq kind list
              taskq kind remove email
            """,
        subcommands: [KindSet.self, KindList.self, KindRemove.self])
}

/// What `kind set` prints, as a sentence: "Tasks of kind email enqueued from now on
/// get at most 10 attempts, wait 30s before their second attempt (doubling up to
/// 1h00m) and are retried when their worker crashes."
private func describe(_ kind: String, _ p: KindPolicy) -> String {
    var parts: [String] = []
    if let m = p.maxAttempts { parts.append(m == 1 ? "get 1 attempt" : "get at most \(m) attempts") }
    if p.backoffBase != nil || p.backoffCap != nil {
        parts.append("wait \(p.backoffBase.map(formatDuration) ?? "the supervisor's backoff") before their second attempt "
                     + "(doubling up to \(p.backoffCap.map(formatDuration) ?? "the supervisor's cap"))")
    }
    switch p.onCrash {
    case .fail?: parts.append("end failed, not retried, when their worker crashes")
    case .retry?: parts.append("are retried when their worker crashes")
    case nil: break
    }
    guard let last = parts.popLast() else {
        return "Kind \(kind) has no policy now: its tasks get their own options, else the supervisor's, else the defaults."
    }
    let list = parts.isEmpty ? last : parts.joined(separator: ", ") + " and " + last
    return "Tasks of kind \(kind) enqueued from now on \(list)."
}

/// The documented JSON shape of a kind's policy.
private func policyJSON(_ kind: String, _ p: KindPolicy) -> String {
    var o = JSONObjectWriter()
    o.add("kind", kind)
    o.add("max_attempts", p.maxAttempts)
    o.add("backoff_base", p.backoffBase)
    o.add("backoff_cap", p.backoffCap)
    o.add("on_crash", p.onCrash?.rawValue)
    return o.text
}

struct KindSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set a kind's retry policy (merged into what it has).",
        discussion: """
            Each option given replaces that part of the kind's policy; parts not given stay \
            as they are; --unset PART (repeatable: max-attempts, backoff-base, backoff-cap, \
            on-crash) removes a part. Prints the kind's whole policy; --json prints \
            {"kind", "max_attempts", "backoff_base", "backoff_cap" (seconds), "on_crash"}, \
            null for parts not set. Applies to tasks enqueued from now on.

            Examples:
              taskq kind set email --max-attempts 10 --backoff-base 30s --backoff-cap 1h
              taskq kind set charge --on-crash fail
              taskq kind set email --unset backoff-base --unset backoff-cap

            Exit status: 0 set; 64 bad kind, option or value (nothing written).
            """)

    @OptionGroup var database: DatabaseOptions

    @Argument(help: ArgumentHelp("The kind.", valueName: "kind"))
    var kind: String

    @OptionGroup var retry: RetryOptions

    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Remove this part of the policy: max-attempts, backoff-base, backoff-cap or on-crash (repeatable).", valueName: "part"))
    var unset: [String] = []

    @Flag(help: "Print JSON (shape above).") var json = false

    func validate() throws {
        try asUsageError { try validateName(kind, what: "kind") }
        let (p, clear) = try policy()
        if p.isEmpty && clear.isEmpty {
            throw ValidationError("nothing to set: give --max-attempts, --backoff-base, --backoff-cap, --on-crash or --unset")
        }
        for f in clear where p.clearing([f]) != p {
            throw ValidationError("--unset \(f.rawValue) and --\(f.rawValue) contradict each other: give one")
        }
        try asUsageError { try p.validate(asOptions: true) }
    }

    func policy() throws -> (KindPolicy, Set<KindPolicy.Field>) {
        let p = try retry.policy()
        var clear: Set<KindPolicy.Field> = []
        for u in unset {
            guard let f = KindPolicy.Field(rawValue: u) else {
                throw ValidationError("--unset \(u): give max-attempts, backoff-base, backoff-cap or on-crash")
            }
            clear.insert(f)
        }
        return (p, clear)
    }

    func run() throws {
        let (p, clear) = try policy()
        let stored: KindPolicy
        do { stored = try database.open(create: true).setKindPolicy(kind, p, clear: clear) } catch let e as TaskQueueError where e.code == .usage {
            // The merge with the stored policy is invalid (a cap below the base).
            throw TaskQueueError.usage("kind \(kind): \(e.message); nothing was changed")
        }
        out(json ? policyJSON(kind, stored) + "\n" : describe(kind, stored) + "\n")
    }
}

struct KindList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the kinds that have a retry policy.",
        discussion: """
            --json prints an array of {"kind", "max_attempts", "backoff_base", \
            "backoff_cap" (seconds), "on_crash"}, null for parts not set.

            Examples:
              taskq kind list
              taskq kind list --json | jq -r '.[] | select(.on_crash == "fail") | .kind'
            """)

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print JSON (shape above).") var json = false

    func run() throws {
        let all = try database.open(create: false).kindPolicies()
        if json { out("[" + all.map { policyJSON($0.kind, $0.policy) }.joined(separator: ",\n") + "]\n"); return }
        if all.isEmpty { out("no kind has a policy: every task gets its own options, else the supervisor's, else the defaults\n"); return }
        out(table(["KIND", "MAX ATTEMPTS", "BACKOFF BASE", "BACKOFF CAP", "ON CRASH"], all.map { k in
            [k.kind, k.policy.maxAttempts.map(String.init) ?? "-", k.policy.backoffBase.map(formatDuration) ?? "-",
             k.policy.backoffCap.map(formatDuration) ?? "-", k.policy.onCrash?.rawValue ?? "-"]
        }))
    }
}

struct KindRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a kind's retry policy (tasks already enqueued keep theirs).",
        discussion: """
            Examples:
              taskq kind remove email

            Exit status: 0 removed; 66 the kind has no policy, or no database.
            """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("The kind.", valueName: "kind")) var kind: String

    func validate() throws { try asUsageError { try validateName(kind, what: "kind") } }

    func run() throws {
        let q = try database.open(create: false)
        guard try q.removeKindPolicy(kind) else {
            throw TaskQueueError.notFound("kind \(JSON.quote(kind)) has no policy in \(q.location)")
        }
        out("removed the policy of kind \(kind)\n")
    }
}
