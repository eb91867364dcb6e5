import CTaskQSystem
#if canImport(Glibc)
import Glibc
#endif

/// Eight bytes of memory shared by a supervisor and one worker: the id of the task
/// the worker is running right now (0 between tasks).
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
    private let memory: UnsafeMutablePointer<Int64>
    /// The descriptor to hand to the worker (supervisor side, until `closeDescriptor`).
    package private(set) var descriptor: Int32

    /// Supervisor side: a new slot, or nil if the system refuses (the worker then
    /// runs without one and a crash counts an attempt for each task it held).
    package static func create() -> CurrentTaskSlot? {
        let fd = taskq_memfd("taskq-current-task")
        if fd < 0 { return nil }
        if ftruncate(fd, 8) != 0 { close(fd); return nil }
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
        guard let p = mmap(nil, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            close(fd)
            return nil
        }
        memory = p.assumingMemoryBound(to: Int64.self)
        descriptor = fd
    }

    deinit {
        closeDescriptor()
        munmap(memory, 8)
    }

    /// The task running now, or 0.
    package var taskID: Int64 {
        get { memory.pointee }
        set { memory.pointee = newValue }
    }

    package func closeDescriptor() {
        if descriptor >= 0 { close(descriptor); descriptor = -1 }
    }
}
