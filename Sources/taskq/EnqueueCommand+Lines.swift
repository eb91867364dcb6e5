import ArgumentParser
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

// `taskq enqueue KIND --lines`: one task per stdin line, committed as it comes.

extension Enqueue {
    /// At most this many transactions, lines or payload bytes are sent together
    /// (their replies, and the lines kept meanwhile, stay small).
    static let sendAtMost = 64, sendAtMostLines = 2_000, sendAtMostBytes = 4 << 20

    /// One task per stdin line, committed as it is read: the shape the benchmark
    /// harness drives, and `tail -f log | taskq enqueue KIND --lines`. An existing
    /// database is opened before the first line is read, so a problem with it shows
    /// at once, not when the first line arrives (maybe hours later, from `tail -f`);
    /// a new one (or an empty file) gets the schema only with the first good line.
    ///
    /// Each `--commit-every` lines are one transaction. While more input is already
    /// waiting, the transactions read whole are sent together (PostgreSQL: in one
    /// round trip), and the next ones are read while those run; their outcome is
    /// read before the next ones are sent, so a refused transaction still stops
    /// everything after it. When no input is waiting, what was read is committed at
    /// once: a slow input (`tail -f`) is committed line by line as it comes.
    func runLines(_ defaults: EnqueueOptions) throws {
        var st = stat()
        let existing = database.isPostgres || (stat(database.path, &st) == 0 && st.st_size > 0)
        var queue: Queue? = existing ? try database.openForEnqueue() : nil
        var pending = PayloadBatch()        // the transaction being filled
        var full: [PayloadBatch] = []       // transactions read whole, not yet sent
        var fullLines = 0, fullBytes = 0
        var inFlight: (inserts: PendingInserts, batches: [PayloadBatch])?
        var n = 0, count = 0, committed = 0
        let start = System.monotonic()
        var first: Double?
        // Option values read once: each read of an @Option goes through its property wrapper.
        let commitEvery = commitEvery, quiet = quiet
        func enqueued(_ ids: [Int64]) {
            if ids.isEmpty { return }
            committed += ids.count
            if !quiet { out(ids.map { "\($0)\n" }.joined()) }
            if committed == ids.count { warnIfPaused(queue!, [template.options.queue]) }   // once, at the first commit
        }
        func enqueuedSoFar() -> String {
            committed == 0 ? "nothing was enqueued" : "the \(committed) earlier line\(committed == 1 ? " was" : "s were") enqueued"
        }
        // Waits for the transactions in flight; prints their ids.
        func collect() throws {
            guard let (inserts, batches) = inFlight else { return }
            inFlight = nil
            do {
                for ids in try inserts.finish() { enqueued(ids) }
            } catch let e as InsertsStopped {
                for ids in e.committed { enqueued(ids) }
                guard let cause = e.cause as? TaskQueueError, committed > 0 || e.unconfirmed > 0 else { throw e.cause }
                var said = enqueuedSoFar()
                if e.unconfirmed > 0 {
                    let unknown = batches.suffix(e.unconfirmed).reduce(0) { $0 + $1.count }
                    said += "; whether the next \(unknown) line\(unknown == 1 ? " was" : "s were") is unknown (the connection was lost before the database confirmed the commit)"
                }
                throw TaskQueueError(cause.code, "\(cause.message); \(said)", isTransient: cause.isTransient)
            }
        }
        // Sends the transactions read whole, once those in flight are done; with
        // `wait`, waits for them too.
        func send(wait: Bool) throws {
            try collect()
            if !full.isEmpty {
                if queue == nil { queue = try database.openForEnqueue() }
                inFlight = (try queue!.startEnqueue(validated: template, eachOf: full), full)
                full.removeAll()
                fullLines = 0
                fullBytes = 0
            }
            if wait { try collect() }
        }
        func seal() {
            if pending.isEmpty { return }
            full.append(pending)
            fullLines += pending.count
            fullBytes += pending.byteCount
            pending = PayloadBatch()
        }
        // Kind and options are the same for every line: checked once here; each
        // line's payload is checked as it is read (so a bad line is named before
        // anything after it is written), and not again by the queue.
        let template = NewTask(kind: kind!, payload: "null", options: defaults)
        try Queue.validate(template)
        var reader = LineReader(fd: 0)
        while let bytes = try reader.next() {
            n += 1
            if first == nil { first = System.monotonic() }
            do {
                if bytes.count > Queue.maxPayloadBytes + 65_536 {
                    throw TaskQueueError.badData("line is longer than the 1 MiB payload limit")
                }
                let appended = try trimmed(bytes).withUnsafeBytes { payload -> Bool in
                    if payload.isEmpty { return false }
                    do { try Queue.validatePayload(bytes: payload) } catch {
                        // JSON is UTF-8, so the check above refused such a line too, but
                        // perhaps for a syntax error further on.
                        if String(validating: payload, as: UTF8.self) == nil { throw TaskQueueError.badData("not valid UTF-8 text") }
                        throw error
                    }
                    pending.append(payload)
                    return true
                }
                if !appended { continue }
            } catch let e as TaskQueueError {
                seal()
                try send(wait: true)
                throw TaskQueueError.badData("line \(n): \(e.message); \(enqueuedSoFar())")
            }
            count += 1
            if pending.count >= commitEvery {
                seal()
                let waiting = reader.hasInputWaiting()
                if !waiting || full.count >= Self.sendAtMost || fullLines >= Self.sendAtMostLines || fullBytes >= Self.sendAtMostBytes {
                    try send(wait: !waiting)
                }
            }
        }
        seal()
        try send(wait: true)
        if report {
            let elapsed = System.monotonic() - (first ?? start)
            out("{\"enqueued\": \(count), \"elapsed_s\": \(elapsed)}\n")
        }
    }
}
