#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import TaskQueue

@Suite struct WorkerConfigTests {
    /// A configuration far over what one argument may hold (128 KiB) goes through its
    /// descriptor whole; the argument naming it stays short, and reading closes it.
    @Test func configurationTravelsThroughItsDescriptor() throws {
        var config = WorkerConfig(database: "/tmp/some dir/taskq.db", supervisorID: 7, supervisorPID: 4242)
        config.queues = (1...2_000).map { "q\($0)" }
        for k in 1...8_000 { config.commands["k\(k)"] = "./run.sh \(k)" }
        config.commands["long"] = String(repeating: "\"é\\\n", count: 50_000)   // 200 KiB, escapes doubling it
        config.untilEmpty = true
        config.currentTaskFD = 9
        let fd = config.descriptor()
        #expect(fd > 2)
        let argument = WorkerConfig.launchArgument(database: config.database, descriptor: fd)
        #expect(argument == "{\"database\":\"/tmp/some dir/taskq.db\",\"config_fd\":\(fd)}")
        let read = try WorkerConfig(launchArgument: argument)
        #expect(read == config)
        // The worker closes it, so handlers do not inherit it. (Its number may be
        // reused at once by a test running beside this one: look at what it names.)
        var link = [CChar](repeating: 0, count: 256)
        _ = readlink("/proc/self/fd/\(fd)", &link, link.count - 1)
        #expect(!String(cString: link).contains("taskq-worker-config"), "\(String(cString: link))")
    }

    @Test func badLaunchArgumentIsAUsageError() {
        for bad in ["", "{", "{\"database\":\"/x\"}", "{\"database\":\"/x\",\"config_fd\":1}", "{\"database\":\"/x\",\"config_fd\":999999}"] {
            #expect(throws: TaskQueueError.self, "\(bad)") { try WorkerConfig(launchArgument: bad) }
        }
    }

    /// The worker leaves why it stopped in the slot; the supervisor reads it back,
    /// also across the inherited descriptor.
    @Test func slotCarriesTheTaskAndTheFailure() throws {
        let supervisorSide = try #require(CurrentTaskSlot.create())
        let worker = try #require(CurrentTaskSlot.open(descriptor: dup(supervisorSide.descriptor)))
        #expect(supervisorSide.failure == nil)
        worker.taskID = 17
        worker.failure = "SQLite error 1 during prepare: no such index: tasks_ready"
        #expect(supervisorSide.taskID == 17)
        #expect(supervisorSide.failure == "SQLite error 1 during prepare: no such index: tasks_ready")
        worker.failure = String(repeating: "ab", count: 5_000)
        #expect(supervisorSide.failure?.count == 4096 - 12, "cut to the page")
        #expect(supervisorSide.taskID == 17)
    }

    /// What the worker retries and what stops it (and its supervisor).
    @Test func permanentErrors() {
        #expect(Worker.isPermanent(TaskQueueError.failed("SQLite error 1 on /x during prepare: Expression tree is too large")))
        #expect(Worker.isPermanent(TaskQueueError.badData("/x is not a taskq database")))
        #expect(Worker.isPermanent(TaskQueueError.usage("bad worker configuration")))
        #expect(!Worker.isPermanent(TaskQueueError.busy("database /x is locked")))
        #expect(!Worker.isPermanent(TaskQueueError.noSpace("no space left on device")))
        #expect(!Worker.isPermanent(TaskQueueError.unavailable("I/O error on database /x")))
        #expect(!Worker.isPermanent(TaskQueueError.notFound("cannot open database /x")))
        #expect(Supervisor.isPermanent(spawnError: E2BIG))
        #expect(Supervisor.isPermanent(spawnError: ENOENT))
        #expect(!Supervisor.isPermanent(spawnError: EAGAIN))
        #expect(!Supervisor.isPermanent(spawnError: EMFILE))
    }
}
