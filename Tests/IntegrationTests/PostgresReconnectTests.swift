// Connection loss on PostgreSQL: the real `taskq` binary against a server of the
// test's own (PrivatePostgresServer), restarted or stopped under it. Skipped, with
// the reason, where no server binaries exist.

import Testing
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A queue on a private server of the test's own, which it may restart or stop.
private final class RestartableQueue: PGQueue {
    let server: PrivatePostgresServer

    init(server: PrivatePostgresServer) {
        self.server = server
        super.init("taskq-pgre", url: server.url)
    }

    static func start() throws -> RestartableQueue { RestartableQueue(server: try PrivatePostgresServer.start().get()) }

    override func close() {
        super.close()
        server.close()
    }
}

@Suite(.serialized, .enabled(if: PrivatePostgresServer.available,
                             "no PostgreSQL server binaries in \(PostgresServer.bin) (apt-get install postgresql-15)"))
struct PostgresReconnectTests {
    /// The server restarts (immediate: every backend killed, as in a crash) in the
    /// middle of a drain: the supervisor and its workers reconnect and finish it;
    /// no task is lost, none runs or finishes twice.
    @Test func aDrainSurvivesAnImmediateServerRestart() throws {
        let q = try RestartableQueue.start()
        defer { q.close() }
        let total = 2000
        let log = q.s.dir + "/ran.log"
        let handler = q.s.script("log.sh", "echo \"$TASKQ_TASK_ID\" >> \(log); sleep 0.002")
        let enq = q.taskq("enqueue", ["t", "--lines"], stdin: (0..<total).map { "{\"i\":\($0)}\n" }.joined())
        #expect(enq.status == 0, "\(enq)")
        let sup = q.supervise(["--workers", "3", "--handler", "t=\(handler)"])
        #expect(eventually(timeout: 60) { q.count("succeeded") >= 200 }, "\(sup.stderrSoFar)")
        let before = q.workerPids
        #expect(q.count("succeeded") < total - 500, "the restart comes in the middle of the drain")
        let restart = q.server.restartImmediately()
        #expect(restart.status == 0, "\(restart)")
        #expect(eventually(timeout: 120) { q.count("succeeded") == total }, "\(q.count("succeeded")) of \(total); \(sup.stderrSoFar)")
        #expect(!sup.exited, "\(sup.stderrSoFar)")
        let ran = String(decoding: readAll(log), as: UTF8.self).split(separator: "\n")
        #expect(ran.count == total, "ran \(ran.count) times for \(total) tasks")
        #expect(Set(ran).count == total)
        #expect(q.sql("SELECT count(*) FROM tasks WHERE attempts <> 1 AND kind <> 'taskq.stop'") == "0")
        #expect(q.sql("SELECT count(*) FROM task_attempts") == "0")
        // The same three workers, reconnected: none was replaced.
        #expect(q.workerPids == before, "\(sup.stderrSoFar)")
        #expect(sup.stderrSoFar.contains("reconnected to"), "\(sup.stderrSoFar)")
        let stop = q.taskq("stop", ["--wait"])
        #expect(stop.status == 0, "\(stop)")
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(q.sql("SELECT count(*) FROM processes") == "0")
    }

    /// The server stops for a while and comes back: the idle worker waits it out
    /// (one warning, not one per try), keeps its process row, and runs the next task.
    @Test func aWorkerOutlivesAServerStoppedForAWhile() throws {
        let q = try RestartableQueue.start()
        defer { q.close() }
        let sup = q.supervise(["--workers", "1", "--handler", "t=cat"])
        #expect(eventually { q.workerPids.count == 1 }, "\(sup.stderrSoFar)")
        let worker = q.workerPids
        let row = q.sql("SELECT id FROM processes WHERE role = 'worker'")
        #expect(q.server.stop().status == 0)
        // Down until the worker and the supervisor have both found out, then for
        // 2 s more, in which each tries again several times (0.1 s, doubling):
        // one warning per connection (the supervisor's, the worker's and its
        // heartbeat's), not one per try.
        let lost = { sup.stderrSoFar.split(separator: "\n").filter { $0.contains("lost the connection") }.count }
        #expect(eventually(timeout: 30) { lost() >= 2 }, "\(sup.stderrSoFar)")
        #expect(!eventually(timeout: 2) { lost() > 3 }, "\(sup.stderrSoFar)")
        #expect(q.server.startAgain().status == 0)
        let id = q.taskq("enqueue", ["t", "2"]).out
        #expect(eventually(timeout: 30) { q.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(q.workerPids == worker)
        #expect(q.sql("SELECT id FROM processes WHERE role = 'worker'") == row)
        #expect(processAlive(worker[0]))
        #expect(lost() <= 3, "\(sup.stderrSoFar)")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
    }

    /// A one-shot command does not wait for a server that is down: one line, exit 69.
    @Test func aCommandFailsAtOnceWhileTheServerIsDown() throws {
        let q = try RestartableQueue.start()
        defer { q.close() }
        #expect(q.taskq("init").status == 0)
        #expect(q.server.stop().status == 0)
        for r in [q.taskq("enqueue", ["t", "1"]), q.taskq("status")] {
            #expect(r.status == 69, "\(r)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
        }
    }

    /// The dashboard serves on after the server restarts: its next requests
    /// reconnect, and what changed meanwhile shows.
    @Test func theDashboardServesOnAfterAnImmediateServerRestart() throws {
        let q = try RestartableQueue.start()
        defer { q.close() }
        #expect(q.taskq("init").status == 0)
        let d = try #require(DashboardProcess(q.s, db: q.url))
        #expect(d.get("/api/status").status == 200)
        #expect(q.server.restartImmediately().status == 0)
        #expect(q.taskq("enqueue", ["t", "1"]).status == 0)
        var last = HTTPAnswer(status: 0, headers: [:], body: "")
        #expect(eventually(timeout: 20) {
            last = d.get("/api/status")
            return last.status == 200 && last.body.contains(#""queued":1"#)
        }, "\(last)\n\(d.child.stderrSoFar)")
        #expect(d.get("/").status == 200)
    }
}
