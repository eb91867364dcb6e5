/// Payloads of tasks that share everything else (one kind, one set of options),
/// kept end to end in one byte buffer: what `taskq enqueue --lines` collects
/// between two commits.
///
/// Why not `[NewTask]`: a line then costs a `String`, a `NewTask` with its
/// options, and their release, which was a third of the producer's work per row
/// outside SQLite; here a line is one copy into a buffer that is reused from one
/// commit to the next.
package struct PayloadBatch: Sendable {
    private var bytes: [UInt8] = []
    /// Where each payload ends in `bytes`; payload i starts where i - 1 ends.
    private var ends: [Int] = []

    package init() {}

    /// The number of payloads.
    package var count: Int { ends.count }
    package var isEmpty: Bool { ends.isEmpty }
    /// The payloads' bytes, all together.
    package var byteCount: Int { bytes.count }

    /// Adds one payload: JSON text, already validated (`JSON.validate`).
    package mutating func append(_ payload: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: payload)
        ends.append(bytes.count)
    }

    /// Empties the batch, keeping its buffers for the next one.
    package mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }

    /// Calls `body` with payload `i`'s bytes, valid only inside `body`.
    package func withPayload<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = i == 0 ? 0 : ends[i - 1]
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<ends[i]])) }
    }

    /// Payload `i` as text.
    package func payload(_ i: Int) -> String {
        withPayload(i) { String(decoding: $0, as: UTF8.self) }
    }
}
