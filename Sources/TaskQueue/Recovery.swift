/// Finds processes that died without cleaning up and gives their tasks back.
/// Run by every supervisor at boot and about once a second after.
package enum Recovery {
    /// Why `p` must be presumed dead, or nil while it may be alive. A process of
    /// this host (same host name, boot and PID namespace: `System.isLocal`) is dead
    /// the moment its pid is gone or reused; any other, including one from an
    /// earlier boot of this machine (which cannot be told from a clone of it that
    /// runs now), or a frozen one, once its lease has expired.
    ///
    /// A live local process past its lease counts as dead only while it is
    /// stopped (SIGSTOP): a running one that missed heartbeats was most likely
    /// waiting for a write lock somebody held longer than the lease, and taking
    /// its task then would run it twice for nothing.
    package static func deathReason(of p: ProcessRecord, now: Timestamp) -> String? {
        let local = System.isLocal(host: p.host, bootID: p.bootID)
        if local && !System.isAlive(pid: p.pid, startTicks: p.startTicks, bootID: p.bootID) {
            return "exited without cleaning up"
        }
        if p.expiresAt < now && (!local || System.isStopped(p.pid)) {
            return "stopped heartbeating (its lease expired \(formatDuration(now.seconds(since: p.expiresAt))) ago)"
        }
        return nil
    }

    /// Recovers every dead process except those in `skip`. Each of its running
    /// tasks counts a failed attempt (retried with backoff, or failed when spent);
    /// sentinels addressed to a dead supervisor are cancelled. On this host the
    /// dead worker's session is killed too, so a handler it left cannot overlap
    /// the retry. Returns the recovered records.
    @discardableResult
    package static func recoverDead(store: any TaskStore, retry: RetryPolicy, onCrash: [String: CrashPolicy] = [:],
                                    skip: Set<Int64>, log: (String) -> Void) throws -> [ProcessRecord] {
        let now = Timestamp.now()
        var recovered: [ProcessRecord] = []
        for p in try store.processes() where !skip.contains(p.id) {
            guard let reason = deathReason(of: p, now: now) else { continue }
            if System.isLocal(host: p.host, bootID: p.bootID) {
                if !System.isAlive(pid: p.pid, startTicks: p.startTicks, bootID: p.bootID) {
                    System.killSession(p.pid)
                } else if p.role == .worker {
                    // Alive but frozen past its lease (SIGSTOP, swapped out): its
                    // handlers must not overlap the retry. The worker itself is left
                    // to wake up, find its lease gone, and exit.
                    System.killSession(p.pid, sparingLeader: true)
                }
            }
            let held: [ClaimedTask]
            do {
                held = try store.recoverProcess(p.id, now: now) { t in
                    retry.crashOutcome(for: t, error: "\(p.role.rawValue) pid \(p.pid) on \(p.host) \(reason) while running task \(t.id), attempt \(t.attempt)/\(t.maxAttempts)",
                                       policy: crashPolicy(t, onCrash), now: now)
                }
            } catch let e as TaskQueueError where e.code == .busy {
                // Its row is held by a transaction in flight (on PostgreSQL, a worker
                // frozen inside one): nothing changed; the next round tries again,
                // and meanwhile the others are recovered.
                continue
            }
            log("recovered \(p.role.rawValue) pid \(p.pid) on \(p.host) (process \(p.id)), which \(reason)" + fates(held, onCrash))
            recovered.append(p)
        }
        return recovered
    }

    /// Recovers tasks left `running` under an owner with no process row: no
    /// process can finish them and no `recoverDead` would find them. The fence
    /// keeps this from happening; this catches whatever path might still leave
    /// one. Each counts a crashed attempt, as a dead worker's task does.
    @discardableResult
    package static func recoverOrphans(store: any TaskStore, retry: RetryPolicy, onCrash: [String: CrashPolicy] = [:],
                                       log: (String) -> Void) throws -> [ClaimedTask] {
        let now = Timestamp.now()
        let held = try store.recoverOrphans(now: now) { t, owner in
            retry.crashOutcome(for: t, error: "process \(owner), no longer registered, was left running task \(t.id), attempt \(t.attempt)/\(t.maxAttempts)",
                               policy: crashPolicy(t, onCrash), now: now)
        }
        for owner in Set(held.map(\.owner)).sorted() {
            log("recovered tasks left running by process \(owner), which is no longer registered"
                + fates(held.filter { $0.owner == owner }.map(\.task), onCrash))
        }
        return held.map(\.task)
    }

    /// "; task 5 goes back for a retry; tasks 6, 7 end failed (on-crash fail)": what
    /// recovery did with each task a dead process held.
    package static func fates(_ held: [ClaimedTask], _ onCrash: [String: CrashPolicy]) -> String {
        func phrase(_ ts: [ClaimedTask], _ one: String, _ many: String) -> String {
            ts.isEmpty ? "" : "; task\(ts.count == 1 ? "" : "s") \(ts.map { String($0.id) }.joined(separator: ", ")) \(ts.count == 1 ? one : many)"
        }
        let byPolicy = held.filter { crashPolicy($0, onCrash) == .fail }
        let spent = held.filter { crashPolicy($0, onCrash) == .retry && $0.attempt >= $0.maxAttempts }
        let retried = held.filter { crashPolicy($0, onCrash) == .retry && $0.attempt < $0.maxAttempts }
        return phrase(retried, "goes back for a retry", "go back for a retry")
            + phrase(byPolicy, "ends failed (on-crash fail)", "end failed (on-crash fail)")
            + phrase(spent, "ends failed (no attempts left)", "end failed (no attempts left)")
    }

    /// What a crash means for `task`: its own setting, else the kind's, else retry.
    package static func crashPolicy(_ task: ClaimedTask, _ byKind: [String: CrashPolicy]) -> CrashPolicy {
        task.onCrash ?? byKind[task.kind] ?? .retry
    }

    /// Supervisors that are alive as far as anyone can tell.
    package static func liveSupervisors(store: any TaskStore) throws -> [ProcessRecord] {
        let now = Timestamp.now()
        return try store.processes().filter { $0.role == .supervisor && deathReason(of: $0, now: now) == nil }
    }
}
