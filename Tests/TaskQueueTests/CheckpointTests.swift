// Checkpoints off the commit path (Sources/CSQLiteTuning/checkpointer.c): a thread
// of the committing process copies the WAL into the database while commits go on,
// and the WAL still starts over instead of growing for as long as commits come.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct CheckpointTests {
    /// One commit per task, 8,000 times, with a second connection open (so the WAL
    /// outlives the writer's): about two WAL pages per commit. Without checkpoints,
    /// or with the thread's PASSIVE checkpoints alone (they never catch up with a
    /// writer that keeps committing, and SQLite restarts the WAL only once all of it
    /// is copied), the WAL would reach ~16,000 pages. (The 4x cap alone would keep it
    /// near 4,000: this checks that the WAL is bounded, which is what matters to users.)
    @Test func walStaysShortUnderOneCommitPerTask() throws {
        let db = TempDB("taskq-checkpoint")
        defer { db.close() }
        let writer = try db.store()
        let other = try db.store()
        for i in 0..<8000 {
            _ = try writer.insertTasks([NewTask(kind: "t", payload: "{\"i\":\(i),\"pad\":\"\(String(repeating: "x", count: 80))\"}")], now: .now())
        }
        var st = stat()
        #expect(stat(db.path + "-wal", &st) == 0)
        let pages = Int(st.st_size) / (4096 + 24)
        #expect(pages < 6000, "the WAL grew to \(pages) pages")
        // The rows reached the database file itself, not only the WAL.
        #expect(stat(db.path, &st) == 0)
        #expect(Int(st.st_size) > 1_000_000, "database file is \(st.st_size) bytes")
        #expect(try other.stats(now: .now()).counts.filter { $0.state == .queued }.map(\.count).reduce(0, +) == 8000)

        // The thread that checkpoints takes no signals: a signal sent to the process
        // must reach the thread that waits for it (a worker's poll, the supervisor's
        // sigtimedwait), not wake this one.
        var threads = 0
        for tid in listDirectory("/proc/self/task") where Int32(tid) != nil {
            let comm = (try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8)) ?? ""
            guard comm.hasPrefix("taskq-ckpt") else { continue }
            threads += 1
            let status = (try? String(contentsOfFile: "/proc/self/task/\(tid)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") } ?? ""
            let mask = UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16) ?? 0
            for sig in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGALRM] {
                #expect(mask & (1 << UInt64(sig - 1)) != 0, "thread \(tid) takes signal \(sig)")
            }
        }
        #expect(threads >= 1)
    }
}
