import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// SQLite's `ChangeSignal`: lets an idle worker sleep until the database changes, instead of polling it:
/// inotify on the database's directory reports every commit (a write to the
/// `-wal` file) by any process. The directory, not the file, is watched because
/// SQLite deletes and recreates the `-wal` file. A slow timeout remains as a
/// fallback (and for delayed tasks coming due).
///
/// The watch is made at the first `wait`, not before: closing an inotify
/// descriptor that holds a watch costs 10–20 ms on Linux (the kernel waits for
/// an SRCU grace period before it frees the watch), and a process pays it at exit
/// too. A worker draining a deep queue with `--until-empty` never waits, so it
/// exits that much sooner.
final class SQLiteChangeSignal: ChangeSignal {
    /// -2: no watch yet; -1: inotify is unavailable (plain timeouts).
    private var fd: Int32 = -2
    private let directory: String
    private let names: Set<String>
    private var buffer = [UInt8](repeating: 0, count: 16384)

    init(databasePath: String) {
        let slash = databasePath.lastIndex(of: "/")
        let dir = slash.map { String(databasePath[..<$0]) } ?? "."
        let base = slash.map { String(databasePath[databasePath.index(after: $0)...]) } ?? databasePath
        directory = dir.isEmpty ? "/" : dir
        names = [base, base + "-wal"]
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Makes the watch. A commit between the caller's last look and this moment
    /// was not seen, so the caller must look again before it sleeps.
    private func arm() {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd >= 0 {
            let mask = UInt32(IN_MODIFY) | UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)
            if inotify_add_watch(fd, directory, mask) < 0 {
                close(fd)
                self.fd = -1
                return
            }
        }
        self.fd = fd
    }

    /// Reads pending events; true if any concerned the database. Call before
    /// looking for work, so a commit that lands after the look still wakes `wait`.
    @discardableResult
    package func drain() -> Bool {
        guard fd >= 0 else { return false }
        var relevant = false
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { return relevant }
            var off = 0
            while off + 16 <= n {
                let len = buffer.withUnsafeBytes { Int($0.load(fromByteOffset: off + 12, as: UInt32.self)) }
                if len > 0 {
                    let nameBytes = buffer[(off + 16)..<min(n, off + 16 + len)].prefix { $0 != 0 }
                    if names.contains(String(decoding: nameBytes, as: UTF8.self)) { relevant = true }
                }
                off += 16 + len
            }
        }
    }

    /// Sleeps until the database changes, a signal arrives, or `timeout` seconds
    /// pass. The first call only makes the watch and returns at once, so that the
    /// caller looks for work again with the watch in place (callers loop).
    package func wait(timeout: Double) {
        if fd == -2 { arm(); return }
        let ms = Int32(max(0, min(timeout, 3600)) * 1000)
        guard fd >= 0 else { poll(nil, 0, ms); return }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = System.monotonic() + timeout
        while true {
            let left = deadline - System.monotonic()
            if left <= 0 { return }
            if poll(&p, 1, Int32(left * 1000) + 1) <= 0 { return }   // timeout or EINTR (signal)
            if drain() { return }
        }
    }
}

extension SQLiteTaskStore {
    /// inotify on the database's directory (see `SQLiteChangeSignal`): every
    /// commit wakes it, whatever it changed.
    package func makeChangeSignal(claims: Bool) -> any ChangeSignal { SQLiteChangeSignal(databasePath: location) }
}
