#if canImport(Testing)
import Foundation
import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

// Store conformance: finishing under the fence.

extension StoreConformance {
    static func fenceOwnerAndAttempt(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s), v = try f.worker(supervisor: s)
        let t = try f.running(owner: w, supervisor: s)
        let before = try store.task(t.id)
        let wrong = try store.finishAndClaim([
            TaskOutcome(taskID: t.id, owner: v, attempt: 1, result: .succeeded(Array("v".utf8))),
            TaskOutcome(taskID: t.id, owner: w, attempt: 2, result: .succeeded(Array("w2".utf8))),
            TaskOutcome(taskID: t.id, owner: w, attempt: 0, result: .released),
            TaskOutcome(taskID: t.id, owner: v, attempt: 1, result: .failed(error: "not mine", retryAt: nil)),
            TaskOutcome(taskID: t.id + 1_000_000, owner: w, attempt: 1, result: .succeeded([])),
        ], claim: nil, now: f.now)
        #expect(wrong.accepted == [false, false, false, false, false])
        #expect(wrong.claimed.isEmpty)
        #expect(try store.task(t.id) == before)

        let at = f.now.adding(seconds: 2)
        #expect(try f.finish(t, owner: w, .succeeded(Array("done".utf8)), at: at))
        let r = try #require(try store.task(t.id))
        #expect(r.state == .succeeded && r.owner == nil && r.attempts == 1)
        #expect(r.finishedAt == at && r.result == Array("done".utf8) && r.lastError == nil)
        // Finished: nothing more applies.
        #expect(try !f.finish(t, owner: w, .failed(error: "late", retryAt: nil)))
        #expect(try !f.finish(t, owner: w, .released))
        #expect(try store.task(t.id) == r)
        // A queued task was never claimed by anyone: nothing applies to it.
        let q = try f.queued(kind: "other")
        let onQueued = try store.finishAndClaim([TaskOutcome(taskID: q, owner: w, attempt: 0, result: .succeeded([])),
                                                 TaskOutcome(taskID: q, owner: w, attempt: 1, result: .succeeded([]))],
                                                claim: nil, now: f.now)
        #expect(onQueued.accepted == [false, false])
        #expect(try store.task(q)?.state == .queued)
    }

    static func fenceStaleAttemptAfterRecovery(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let a = try f.worker(supervisor: s), b = try f.worker(supervisor: s)
        let t = try f.running(owner: a, supervisor: s)   // a's attempt 1
        // a is presumed dead; its task goes back for a retry.
        let held = try store.recoverProcess(a, now: f.now) { _ in .failed(error: "worker a died", retryAt: f.now) }
        #expect(held.map(\.id) == [t.id])
        var r = try #require(try store.task(t.id))
        #expect(r.state == .queued && r.attempts == 1 && r.owner == nil && r.lastError == "worker a died")
        // b takes it: attempt 2.
        let mine = try f.claimed(b, supervisor: s, kinds: [t.kind])
        #expect(mine.map(\.id) == [t.id] && mine.first?.attempt == 2)
        // a was only frozen: its late outcomes, whatever they are, change nothing.
        let late: [TaskOutcome.Result] = [.succeeded(Array("from a".utf8)), .failed(error: "a failed", retryAt: nil),
                                          .failed(error: "a retries", retryAt: f.now), .released]
        for outcome in late {
            #expect(throws: OwnerNotRegistered.self, "stale \(outcome) accepted") { try f.finish(t, owner: a, outcome) }
        }
        r = try #require(try store.task(t.id))
        #expect(r.state == .running && r.owner == b && r.attempts == 2)
        // b finishes; a's late result still changes nothing.
        #expect(try f.finish(mine[0], owner: b, .succeeded(Array("from b".utf8))))
        #expect(throws: OwnerNotRegistered.self) { try f.finish(t, owner: a, .succeeded(Array("from a".utf8))) }
        r = try #require(try store.task(t.id))
        #expect(r.state == .succeeded && r.result == Array("from b".utf8) && r.attempts == 2)
    }

    /// A worker declared dead while frozen (its row deleted by recovery) that thaws
    /// and reports its result and claims more in one call: the call fails whole.
    /// Had the claim gone through, its task would be `running` under an owner no
    /// recovery looks for, forever.
    static func unregisteredOwnerWritesNothing(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let a = try f.worker(supervisor: s)
        let t = try f.running(owner: a, supervisor: s)
        let waiting = try f.queued()
        try store.recoverProcess(a, now: f.now) { _ in .failed(error: "worker a died", retryAt: f.now) }
        let kinds = ["t", t.kind]
        let result = TaskOutcome(taskID: t.id, owner: a, attempt: t.attempt, result: .succeeded(Array("late".utf8)))
        #expect(throws: OwnerNotRegistered.self) {
            try store.finishAndClaim([result], claim: f.claim(a, supervisor: s, kinds: kinds), now: f.now)
        }
        #expect(throws: OwnerNotRegistered.self) {
            try store.finishAndClaim([], claim: f.claim(a, supervisor: s, kinds: kinds), now: f.now)
        }
        for id in [t.id, waiting] {
            let r = try #require(try store.task(id))
            #expect(r.state == .queued && r.owner == nil, "\(r)")
        }
        #expect(try store.task(t.id)?.attempts == 1 && store.task(waiting)?.attempts == 0)
        // A live worker gets both.
        let b = try f.worker(supervisor: s)
        #expect(Set(try f.claimed(b, supervisor: s, kinds: kinds).map(\.id)) == [t.id, waiting])
    }

    static func releaseDecrementsAttempts(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let t = try f.running(owner: w, supervisor: s, attempt: 2)
        #expect(try store.task(t.id)?.attempts == 2)
        #expect(try f.finish(t, owner: w, .released))
        let r = try #require(try store.task(t.id))
        #expect(r.state == .queued && r.attempts == 1 && r.owner == nil && r.finishedAt == nil && r.result == nil)
        #expect(r.lastError == "earlier attempt failed", "release must not touch the last error")
        let again = try f.claimed(w, supervisor: s, kinds: [t.kind])
        #expect(again.map(\.attempt) == [2])
    }

    static func retrySetsRunAtAndError(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let t = try f.running(owner: w, supervisor: s)
        let retryAt = f.now.adding(seconds: 30)
        #expect(try f.finish(t, owner: w, .failed(error: "boom: exit status 3", retryAt: retryAt)))
        let r = try #require(try store.task(t.id))
        #expect(r.state == .queued && r.attempts == 1 && r.owner == nil)
        #expect(r.runAt == retryAt && r.lastError == "boom: exit status 3")
        #expect(r.finishedAt == nil && r.result == nil)
        #expect(try f.claimed(w, supervisor: s, kinds: [t.kind], at: retryAt.adding(seconds: -1)).isEmpty)
        #expect(try f.claimed(w, supervisor: s, kinds: [t.kind], at: retryAt).map(\.attempt) == [2])
    }

    static func finalFailure(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let t = try f.running(owner: w, supervisor: s, attempt: 3, maxAttempts: 3)
        let at = f.now.adding(seconds: 3)
        #expect(try f.finish(t, owner: w, .failed(error: "gave up: exit status 1", retryAt: nil), at: at))
        let r = try #require(try store.task(t.id))
        #expect(r.state == .failed && r.finishedAt == at && r.lastError == "gave up: exit status 1")
        #expect(r.owner == nil && r.attempts == 3 && r.result == nil)
        #expect(try f.claimed(w, supervisor: s, kinds: [t.kind], at: at.adding(seconds: 3600)).isEmpty)
    }

    static func finishThenClaimInOneCall(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let ids = try (0..<3).map { _ in try f.queued() }
        let first = try f.claimed(w, supervisor: s, limit: 1)
        #expect(first.map(\.id) == [ids[0]])
        let (accepted, claimed) = try store.finishAndClaim([
            TaskOutcome(taskID: first[0].id, owner: w, attempt: 1, result: .succeeded(Array("ok".utf8))),
            TaskOutcome(taskID: ids[2], owner: w, attempt: 1, result: .succeeded([])),   // not claimed: refused
        ], claim: f.claim(w, supervisor: s, limit: 1), now: f.now)
        #expect(accepted == [true, false])
        #expect(claimed.map(\.id) == [ids[1]])
        #expect(try store.task(ids[0])?.state == .succeeded)
        #expect(try store.task(ids[2])?.state == .queued)
    }

    /// Many outcomes in one call, as a worker reports a claimed batch (the SQLite
    /// store finishes the successful ones with one UPDATE over their id range): each
    /// is accepted or refused as it would be alone, and each row gets its own result.
    static func batchOfOutcomes(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s), v = try f.worker(supervisor: s, kinds: ["u"])
        let ids = try (0..<10).map { try f.queued(kind: $0 == 2 ? "u" : "t", payload: "\($0)") }
        let waiting = try store.insertTasks([NewTask(kind: "d", options: EnqueueOptions(after: [ids[6]]))], now: f.now)[0]
        // v holds ids[2]; w claims the other nine (ids not consecutive: the id-list claim).
        #expect(try f.claimed(v, supervisor: s, kinds: ["u"]).map(\.id) == [ids[2]])
        let mine = try f.claimed(w, supervisor: s, kinds: ["t"], limit: 9)
        #expect(mine.map(\.id) == ids.enumerated().filter { $0.offset != 2 }.map(\.element))
        let outputs: [[UInt8]] = [Array("a".utf8), [0xFF, 0x00, 0x41], Array("from w".utf8), [], [], Array("stale".utf8),
                                  Array("six".utf8), Array("é✓".utf8), Array("x".utf8), Array("a\u{0}b".utf8)]
        let at = f.now.adding(seconds: 1)
        let outcomes = (0..<10).map { k -> TaskOutcome in
            let result: TaskOutcome.Result = k == 4 ? .failed(error: "four failed", retryAt: nil) : .succeeded(outputs[k])
            return TaskOutcome(taskID: ids[k], owner: w, attempt: k == 5 ? 2 : 1, result: result)
        }
        let r = try store.finishAndClaim(outcomes, claim: nil, now: at)
        // ids[2] is v's, and ids[5] is in its attempt 1, not 2.
        #expect(r.accepted == [true, true, false, true, true, false, true, true, true, true])
        for k in [0, 1, 3, 6, 7, 8, 9] {
            let t = try #require(try store.task(ids[k]))
            #expect(t.state == .succeeded && t.owner == nil && t.attempts == 1 && t.finishedAt == at, "task \(k)")
            #expect(t.result == outputs[k], "task \(k): \(t.result ?? [])")
        }
        let four = try #require(try store.task(ids[4]))
        #expect(four.state == .failed && four.lastError == "four failed" && four.result == nil)
        let two = try #require(try store.task(ids[2]))
        #expect(two.state == .running && two.owner == v && two.result == nil)
        let five = try #require(try store.task(ids[5]))
        #expect(five.state == .running && five.owner == w && five.attempts == 1)
        // ids[6] had a task waiting for it: released.
        #expect(try f.claimed(w, supervisor: s, kinds: ["d"], at: at).map(\.id) == [waiting])
        #expect(try f.finish(mine[4], owner: w, .succeeded([])))
        #expect(try store.task(ids[5])?.state == .succeeded)

        // Consecutive ids (one range claimed), each reported twice: once only counts.
        let more = try (0..<3).map { _ in try f.queued(kind: "t") }
        let got = try f.claimed(w, supervisor: s, kinds: ["t"], at: at)
        #expect(got.map(\.id) == more && got.allSatisfy { $0.attempt == 1 })
        for id in more {
            let t = try #require(try store.task(id))
            #expect(t.state == .running && t.owner == w && t.attempts == 1 && t.startedAt == at)
        }
        let twice = got.flatMap { t in ["first", "second"].map {
            TaskOutcome(taskID: t.id, owner: w, attempt: 1, result: .succeeded(Array($0.utf8)))
        } }
        #expect(try store.finishAndClaim(twice, claim: nil, now: at).accepted == [true, false, true, false, true, false])
        #expect(try more.map { try store.task($0)?.result } == Array(repeating: Array("first".utf8), count: 3))

        // Large outputs in one batch (1.8 MB in all): each stored whole.
        var random = SystemRandomNumberGenerator()
        let big = try (0..<3).map { _ in try f.queued(kind: "t") }
        let held = try f.claimed(w, supervisor: s, kinds: ["t"], at: at)
        #expect(held.map(\.id) == big)
        let outputsBig = big.map { _ in (0..<600_000).map { _ in UInt8.random(in: 0...255, using: &random) } }
        let done = try store.finishAndClaim(zip(held, outputsBig).map {
            TaskOutcome(taskID: $0.id, owner: w, attempt: $0.attempt, result: .succeeded($1))
        }, claim: nil, now: at)
        #expect(done.accepted == [true, true, true])
        #expect(try big.map { try store.task($0)?.result } == outputsBig)
    }
    // MARK: results


    static func resultBytesRoundTrip(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        var random = SystemRandomNumberGenerator()
        let outputs: [[UInt8]] = [
            Array("héllo wörld ✓ 🎉\n".utf8),
            [],
            [0xFF, 0xFE, 0x00, 0x41],
            Array("a\u{0}b\n".utf8),        // valid UTF-8 with a NUL
            [0x68, 0x69, 0xC3],             // UTF-8 cut in the middle of a character
            Array("\r\n\t '\"\\".utf8),
            (0..<262_144).map { _ in UInt8.random(in: 0...255, using: &random) },
        ]
        let ids = try outputs.map { try f.succeeded($0, owner: w, supervisor: s) }
        let other = try make()
        for (id, bytes) in zip(ids, outputs) {
            #expect(try store.task(id)?.result == bytes, "task \(id): \(bytes.prefix(16))")
            #expect(try other.task(id)?.result == bytes, "task \(id) read by another connection")
        }
    }
    // MARK: processes and recovery
}
#endif
