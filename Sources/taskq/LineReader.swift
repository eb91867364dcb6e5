// Reading stdin line by line, as bytes, and trimming lines: `enqueue --lines`,
// `--batch` and `map`.

#if canImport(Glibc)
import Glibc
#endif
import TaskQueue

/// Reads a file descriptor line by line, as bytes (a line that is not UTF-8 is
/// reported, not silently repaired as `readLine` would).
struct LineReader {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    /// One read buffer for the reader's life, not one per read.
    private var chunk = [UInt8](repeating: 0, count: 65536)

    init(fd: Int32) { self.fd = fd }

    /// The next line without its "\n", or nil at the end of input. The slice
    /// shares the reader's buffer (no copy per line); drop it before the next call.
    mutating func next() throws -> ArraySlice<UInt8>? {
        while true {
            let from = start
            let newline = buffer.withUnsafeBufferPointer { b -> Int? in
                guard from < b.count, let p = memchr(b.baseAddress! + from, 0x0A, b.count - from) else { return nil }
                return b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
            }
            if let nl = newline {
                let line = buffer[start..<nl]
                start = nl + 1
                return line
            }
            if eof {
                if start < buffer.count { let line = buffer[start...]; start = buffer.count; return line }
                return nil
            }
            if start > 0 { buffer.removeFirst(start); start = 0 }
            let got = read(fd, &chunk, chunk.count)
            if got < 0 {
                if errno == EINTR { continue }
                throw TaskQueueError.unavailable("cannot read stdin: \(String(cString: strerror(errno)))")
            }
            if got == 0 { eof = true } else { buffer += chunk[0..<got] }
        }
    }

    /// Whether `next` would return at once: a whole line is buffered, the input
    /// has ended, or more is waiting to be read. False when the next line has yet
    /// to be written (`tail -f`, a slow producer): what was read should be
    /// committed now rather than wait for it.
    func hasInputWaiting() -> Bool {
        if eof || buffer[start...].contains(0x0A) { return true }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) > 0
    }
}

/// `bytes` without surrounding spaces, tabs, CRs and newlines.
func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    func isSpace(_ b: UInt8) -> Bool {
        b == UInt8(ascii: " ") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r")
    }
    var lo = bytes.startIndex, hi = bytes.endIndex
    while lo < hi && isSpace(bytes[lo]) { lo += 1 }
    while hi > lo && isSpace(bytes[hi - 1]) { hi -= 1 }
    return bytes[lo..<hi]
}

/// `bytes` without surrounding spaces, tabs, CRs and newlines, as text; nil when
/// they are not UTF-8. Trimmed on the bytes (the whitespace is ASCII), then
/// decoded, and compared with the input: decoding repairs bad bytes (U+FFFD in
/// their place), so a difference means the line was not UTF-8. (The standard
/// library's `String(validating:)` instantiates generic metadata on every call:
/// a quarter of a line's cost outside SQLite.)
func trimmedText(_ bytes: ArraySlice<UInt8>) -> String? {
    trimmed(bytes).withUnsafeBufferPointer { input -> String? in
        if input.isEmpty { return "" }
        var text = String(decoding: input, as: UTF8.self)
        return text.withUTF8 { $0.count == input.count && memcmp($0.baseAddress!, input.baseAddress!, input.count) == 0 } ? text : nil
    }
}
