#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import TaskQueue
import TaskQueueTestSupport

@Suite struct SystemTests {
    /// `killSession` reads the session of every process through `sessionID(of:)`,
    /// which parses /proc/PID/stat in place: it must agree with the kernel's
    /// getsid, also for a command name with spaces and parentheses.
    @Test func sessionIDParsesStatLikeGetsid() throws {
        let dir = Harness.tempDir("taskq-system")
        defer { Harness.remove(dir) }
        let odd = "\(dir)/a) b (c"   // comm becomes "a) b (c"
        #expect(link("/bin/sleep", odd) == 0 || symlink("/bin/sleep", odd) == 0)
        let child = Child(odd, ["30"], newSession: true)
        defer { child.kill9() }
        #expect(eventually(timeout: 10) { System.sessionID(of: child.pid) == child.pid })
        #expect(System.sessionID(of: child.pid) == getsid(child.pid))
        #expect(System.sessionID(of: getpid()) == getsid(0))
        // Every process visible now, where both can read it.
        var checked = 0
        for name in listDirectory("/proc") {
            guard let pid = Int32(name) else { continue }
            let sid = getsid(pid)
            guard sid >= 0, let parsed = System.sessionID(of: pid) else { continue }
            #expect(parsed == sid, "pid \(pid)")
            checked += 1
        }
        #expect(checked > 2)
        #expect(System.sessionID(of: Int32.max) == nil)
        // And the scan it serves kills exactly that session.
        #expect(System.killSession(child.pid) == 1)
        #expect(child.wait(timeout: 10) != nil)
    }
}
