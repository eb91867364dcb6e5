// Building JSON text: `JSONObjectWriter` and the byte buffer under it and `JSON.quote`.

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Object writer

/// Builds one JSON object as text, members in insertion order:
///
///     var o = JSONObjectWriter()
///     o.add("id", 3); o.add("state", "queued"); o.addRaw("payload", rawJSONText); o.addNull("result")
///     o.text   // {"id":3,"state":"queued","payload":...,"result":null}
///
/// Keys are not checked for duplicates. Doubles that are integral and exactly
/// representable as integers print without a fraction (`3`, `-0`); others use Swift's
/// shortest round-trip form; NaN and infinities print as `null`.
public struct JSONObjectWriter: Sendable {
    private var out = JSONOutput()
    private var empty = true

    /// An empty object.
    public init() {
        out.reserve(128)
        out.byte(0x7B)
    }

    @inline(__always)
    private mutating func key(_ key: String) {
        if empty { empty = false } else { out.byte(0x2C) }
        out.writeQuoted(key)
        out.byte(0x3A)
    }

    /// Adds a string member.
    public mutating func add(_ key: String, _ value: String) {
        self.key(key)
        out.writeQuoted(value)
    }

    /// Adds a string member, or `null` for nil.
    public mutating func add(_ key: String, _ value: String?) {
        if let value { add(key, value) } else { addNull(key) }
    }

    /// Adds an integer member.
    public mutating func add(_ key: String, _ value: Int64) {
        self.key(key)
        appendDecimal(value, to: &out.bytes)
    }

    /// Adds an integer member, or `null` for nil.
    public mutating func add(_ key: String, _ value: Int64?) {
        if let value { add(key, value) } else { addNull(key) }
    }

    /// Adds an integer member.
    public mutating func add(_ key: String, _ value: Int) {
        self.key(key)
        appendDecimal(Int64(value), to: &out.bytes)
    }

    /// Adds a number member (`null` for NaN or infinity).
    public mutating func add(_ key: String, _ value: Double) {
        self.key(key)
        out.writeDouble(value)
    }

    /// Adds a number member, or `null` for nil, NaN or infinity.
    public mutating func add(_ key: String, _ value: Double?) {
        if let value { add(key, value) } else { addNull(key) }
    }

    /// Adds a `true`/`false` member.
    public mutating func add(_ key: String, _ value: Bool) {
        self.key(key)
        out.ascii(value ? "true" : "false")
    }

    /// Adds a member holding an already parsed value (serialized compactly).
    public mutating func add(_ key: String, _ value: JSONValue) {
        self.key(key)
        out.write(value)
    }

    /// Adds a `null` member.
    public mutating func addNull(_ key: String) {
        self.key(key)
        out.ascii("null")
    }

    /// Adds a member whose value is `json` copied verbatim. The caller guarantees that
    /// `json` is one valid JSON value (e.g. a payload that passed `JSON.validate`).
    public mutating func addRaw(_ key: String, _ json: String) {
        self.key(key)
        out.bytes.append(contentsOf: json.utf8)
    }

    /// The object's text, e.g. `{"id":3,"state":"queued"}`.
    public var text: String {
        let bytes = out.bytes
        return String(unsafeUninitializedCapacity: bytes.count + 1) { buf in
            bytes.withUnsafeBufferPointer { src in
                buf.baseAddress!.initialize(from: src.baseAddress!, count: src.count)
            }
            buf[bytes.count] = 0x7D
            return bytes.count + 1
        }
    }
}

// MARK: - Output

/// A UTF-8 byte buffer for building JSON text.
struct JSONOutput: Sendable {
    var bytes: [UInt8] = []

    mutating func reserve(_ n: Int) { bytes.reserveCapacity(n) }

    @inline(__always) mutating func byte(_ b: UInt8) { bytes.append(b) }

    @inline(__always) mutating func ascii(_ s: String) { bytes.append(contentsOf: s.utf8) }

    var string: String { String(decoding: bytes, as: UTF8.self) }

    mutating func write(_ v: JSONValue) {
        switch v {
        case .null: ascii("null")
        case .bool(let b): ascii(b ? "true" : "false")
        case .number(let n): ascii(n)
        case .string(let s): writeQuoted(s)
        case .array(let a):
            byte(0x5B)
            var first = true
            for e in a {
                if first { first = false } else { byte(0x2C) }
                write(e)
            }
            byte(0x5D)
        case .object(let members):
            byte(0x7B)
            var first = true
            for m in members {
                if first { first = false } else { byte(0x2C) }
                writeQuoted(m.key)
                byte(0x3A)
                write(m.value)
            }
            byte(0x7D)
        }
    }

    mutating func writeDouble(_ d: Double) {
        guard d.isFinite else { ascii("null"); return }
        if d == 0 {
            ascii(d.sign == .minus ? "-0" : "0")
        } else if d.magnitude < 9_007_199_254_740_992, d == d.rounded(.towardZero) {
            appendDecimal(Int64(d), to: &bytes)
        } else {
            ascii(d.description)
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    mutating func writeQuoted(_ s: String) {
        byte(0x22)
        var s = s
        s.withUTF8 { src in
            var runStart = 0
            var i = 0
            let n = src.count
            while i < n {
                let c = src[i]
                if c >= 0x20 && c != 0x22 && c != 0x5C { i += 1; continue }
                if runStart < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: src[runStart..<i])) }
                byte(0x5C)
                switch c {
                case 0x22: byte(0x22)
                case 0x5C: byte(0x5C)
                case 0x0A: byte(0x6E)   // n
                case 0x09: byte(0x74)   // t
                case 0x0D: byte(0x72)   // r
                case 0x08: byte(0x62)   // b
                case 0x0C: byte(0x66)   // f
                default:
                    byte(0x75); byte(0x30); byte(0x30)   // u00
                    byte(JSONOutput.hex[Int(c >> 4)])
                    byte(JSONOutput.hex[Int(c & 0xF)])
                }
                i += 1
                runStart = i
            }
            if runStart < n { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: src[runStart..<n])) }
        }
        byte(0x22)
    }
}
