#if canImport(Glibc)
import Glibc
#endif

/// Tells open pages that the database changed: inotify on the database's
/// directory reports every commit by any process (a write to the `-wal` file; the
/// directory is watched because SQLite deletes and recreates that file), the same
/// signal idle workers sleep on. Changes within `coalesce` seconds become one
/// version, so a busy queue sends at most a few events a second. It never queries
/// the database: while nothing changes, nothing is read.
///
/// Two counters: `version` counts database changes (the aggregate waits on it),
/// `events` counts what pages are told: a change, or a fresh aggregate.
package final class ChangeFeed: @unchecked Sendable {
    private let lock = Mutex()
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var version: UInt64 = 0
    private var events: UInt64 = 0
    private var stopped = false
    private let directory: String
    private let names: Set<String>
    private let coalesce: Double

    package init(databasePath: String, coalesce: Double = 0.25) {
        let slash = databasePath.lastIndex(of: "/")
        let dir = slash.map { String(databasePath[..<$0]) } ?? "."
        let base = slash.map { String(databasePath[databasePath.index(after: $0)...]) } ?? databasePath
        directory = dir.isEmpty ? "/" : dir
        names = [base, base + "-wal"]
        self.coalesce = coalesce
        pthread_cond_init(cond, nil)
    }

    /// Starts watching on a thread of its own. Where inotify is unavailable it
    /// looks at the files' size and modification time once a second instead
    /// (still no query).
    package func start() {
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        let mask = UInt32(IN_MODIFY) | UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)
        guard fd >= 0, inotify_add_watch(fd, directory, mask) >= 0 else {
            if fd >= 0 { close(fd) }
            return startPolling()
        }
        spawnThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 16384)
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while !isStopped {
                if poll(&p, 1, 500) <= 0 { continue }
                guard relevant(fd, &buffer) else { continue }
                // Let the burst finish, then announce it once.
                usleep(useconds_t(coalesce * 1_000_000))
                while poll(&p, 1, 0) > 0 { _ = relevant(fd, &buffer) }
                bump()
            }
            close(fd)
        }
    }

    private func startPolling() {
        let paths = names.map { directory + "/" + $0 }
        func signature() -> [Int] {
            paths.flatMap { path -> [Int] in
                var st = stat()
                guard stat(path, &st) == 0 else { return [0, 0, 0] }
                return [Int(st.st_size), Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec)]
            }
        }
        spawnThread { [self] in
            var last = signature()
            while !isStopped {
                usleep(1_000_000)
                let now = signature()
                if now != last { last = now; bump() }
            }
        }
    }

    /// Counts a change (also called after the dashboard's own actions).
    package func bump() {
        lock.locked {
            version &+= 1
            events &+= 1
            pthread_cond_broadcast(cond)
        }
    }

    /// Tells pages to look again without a database change (a fresh aggregate).
    package func announce() {
        lock.locked {
            events &+= 1
            pthread_cond_broadcast(cond)
        }
    }

    package func stop() {
        lock.locked {
            stopped = true
            pthread_cond_broadcast(cond)
        }
    }

    private var isStopped: Bool { lock.locked { stopped } }

    package var current: UInt64 { lock.locked { version } }
    package var currentEvent: UInt64 { lock.locked { events } }

    /// Waits until the database version (or with `events`, the event count) is
    /// past `seen`, the feed stops, or `timeout` seconds pass; returns the count
    /// then (nil once stopped).
    package func wait(after seen: UInt64, timeout: Double, events: Bool = false) -> UInt64? {
        lock.locked {
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            let ns = Int(deadline.tv_nsec) + Int(timeout * 1e9)
            deadline.tv_sec += ns / 1_000_000_000
            deadline.tv_nsec = ns % 1_000_000_000
            while (events ? self.events : version) == seen && !stopped {
                if pthread_cond_timedwait(cond, lock.m, &deadline) == ETIMEDOUT { break }
            }
            return stopped ? nil : (events ? self.events : version)
        }
    }

    /// Reads pending events; true if any concerned the database.
    private func relevant(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return false }
        var found = false
        var off = 0
        while off + 16 <= n {
            let len = buffer.withUnsafeBytes { Int($0.load(fromByteOffset: off + 12, as: UInt32.self)) }
            if len > 0 {
                let nameBytes = buffer[(off + 16)..<min(n, off + 16 + len)].prefix { $0 != 0 }
                if names.contains(String(decoding: nameBytes, as: UTF8.self)) { found = true }
            }
            off += 16 + len
        }
        return found
    }
}
