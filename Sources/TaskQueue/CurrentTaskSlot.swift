import CTaskQSystem
#if canImport(Glibc)
import Glibc
#endif

/// A page of memory shared by a supervisor and one worker: the id of the task the
/// worker is running right now (0 between tasks), and why it stopped when it stops
/// for an error that retrying cannot heal.
///
/// A worker claims up to a batch of tasks at once. When it dies, its supervisor
/// reads the slot: only the task that was running counts a failed attempt; the
/// others it had claimed but not started go back without counting one.
///
/// The supervisor creates it (a memfd, mapped) before spawning the worker, which
/// inherits the descriptor, maps it and closes it. A plain aligned 8-byte store is
/// atomic on the platforms taskq runs on; the reader only looks after the writer
/// is dead.
package final class CurrentTaskSlot {
    private let memory: UnsafeMutableRawPointer
    /// Bytes 0–7: the task id. 8–11: the length of the failure text that follows.
    private static let size = 4096, failureOffset = 12
    /// The descriptor to hand to the worker (supervisor side, until `closeDescriptor`).
    package private(set) var descriptor: Int32

    /// Supervisor side: a new slot, or nil if the system refuses (the worker then
    /// runs without one and a crash counts an attempt for each task it held).
    package static func create() -> CurrentTaskSlot? {
        let fd = taskq_memfd("taskq-current-task")
        if fd < 0 { return nil }
        if ftruncate(fd, off_t(size)) != 0 { close(fd); return nil }
        return CurrentTaskSlot(fd: fd)
    }

    /// Worker side: maps the inherited descriptor and closes it.
    package static func open(descriptor fd: Int32) -> CurrentTaskSlot? {
        guard fd > 2 else { return nil }
        let slot = CurrentTaskSlot(fd: fd)
        slot?.closeDescriptor()
        return slot
    }

    private init?(fd: Int32) {
        guard let p = mmap(nil, Self.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            close(fd)
            return nil
        }
        memory = p
        descriptor = fd
    }

    deinit {
        closeDescriptor()
        munmap(memory, Self.size)
    }

    /// The task running now, or 0.
    package var taskID: Int64 {
        get { memory.load(as: Int64.self) }
        set { memory.storeBytes(of: newValue, as: Int64.self) }
    }

    /// Why the worker stopped, set by a worker that stops for an error retrying
    /// cannot heal, read by its supervisor after it exited (nil: not set). Cut to
    /// what fits in the page (a character cut in two reads back as U+FFFD).
    package var failure: String? {
        get {
            let n = Int(memory.load(fromByteOffset: 8, as: UInt32.self))
            guard n > 0, n <= Self.size - Self.failureOffset else { return nil }
            return String(decoding: UnsafeRawBufferPointer(start: memory + Self.failureOffset, count: n), as: UTF8.self)
        }
        set {
            let bytes = Array((newValue ?? "").utf8.prefix(Self.size - Self.failureOffset))
            bytes.withUnsafeBytes { b in
                if let p = b.baseAddress { (memory + Self.failureOffset).copyMemory(from: p, byteCount: b.count) }
            }
            memory.storeBytes(of: UInt32(bytes.count), toByteOffset: 8, as: UInt32.self)
        }
    }

    package func closeDescriptor() {
        if descriptor >= 0 { close(descriptor); descriptor = -1 }
    }
}
