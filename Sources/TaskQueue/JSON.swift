// A small, strict RFC 8259 JSON parser, validator and encoder, without Foundation.
//
// Everything works on UTF-8 bytes. `JSON.validate` checks a document without building
// any values (it runs on every enqueued payload); `JSON.parse` builds a `JSONValue`
// tree that keeps number literals as written and object members in document order.

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Values

/// A parsed JSON value.
///
/// Numbers keep their literal text, so nothing is lost to binary floating point;
/// equality is structural and compares number literals as text (`1.0` != `1`).
public enum JSONValue: Equatable, Sendable {
    /// `null`
    case null
    /// `true` or `false`
    case bool(Bool)
    /// A number, as the literal text written in the document, e.g. `"-1.5e3"`.
    case number(String)
    /// A string, with escapes decoded.
    case string(String)
    /// An array, in document order.
    case array([JSONValue])
    /// An object's members in document order; duplicate keys are kept.
    case object([JSONMember])

    /// For an object, the value of the last member named `key`; nil if there is
    /// none or if this is not an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        var i = members.count
        while i > 0 {
            i -= 1
            if members[i].key == key { return members[i].value }
        }
        return nil
    }

    /// The value serialized as JSON with no whitespace. Strings are escaped as by
    /// `JSON.quote`; numbers are written as their literal text.
    public var compactText: String {
        var out = JSONOutput()
        out.reserve(64)
        out.write(self)
        return out.string
    }

    /// For a `.number` written as an integer literal (no fraction, no exponent) that
    /// fits in `Int64`, its value; nil otherwise.
    public var intValue: Int64? {
        guard case .number(let text) = self else { return nil }
        var digits = 0
        for (n, c) in text.utf8.enumerated() {
            if c >= 0x30 && c <= 0x39 {
                digits += 1
            } else if !(n == 0 && c == 0x2D) {   // only a leading '-' besides digits
                return nil
            }
        }
        guard digits > 0 else { return nil }
        return Int64(text)
    }

    /// For a `.number`, its value as a `Double` (nearest representable value;
    /// literals beyond the `Double` range give ±infinity); nil for other values.
    public var doubleValue: Double? {
        guard case .number(let text) = self else { return nil }
        return Double(text)
    }

    /// For a `.string`, its value; nil otherwise.
    public var stringValue: String? {
        guard case .string(let s) = self else { return nil }
        return s
    }

    /// For a `.bool`, its value; nil otherwise.
    public var boolValue: Bool? {
        guard case .bool(let b) = self else { return nil }
        return b
    }

    /// For an `.array`, its elements; nil otherwise.
    public var arrayValue: [JSONValue]? {
        guard case .array(let a) = self else { return nil }
        return a
    }

    /// For an `.object`, its members in document order; nil otherwise.
    public var objectMembers: [JSONMember]? {
        guard case .object(let m) = self else { return nil }
        return m
    }

    /// True for `.null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

/// One member (key and value) of a JSON object.
public struct JSONMember: Equatable, Sendable {
    /// The member's key, with escapes decoded.
    public var key: String
    /// The member's value.
    public var value: JSONValue

    /// A member `key: value`.
    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// Why a document is not valid JSON, and where.
public struct JSONSyntaxError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The byte offset (in the UTF-8 input) of the problem.
    public var offset: Int
    /// What is wrong, e.g. "unexpected character 'x'" or "unterminated string".
    public var message: String
    /// How to fix a common mistake, when the input looks like one: single quotes
    /// ("JSON needs double quotes"), a bare word where a string was meant, an
    /// unquoted key. Nil otherwise.
    public var hint: String?

    /// An error `message` at byte `offset`, with an optional `hint`.
    public init(offset: Int, message: String, hint: String? = nil) {
        self.offset = offset
        self.message = message
        self.hint = hint
    }

    /// "<message> at byte <offset>", then " (<hint>)" when there is one.
    public var description: String { "\(message) at byte \(offset)" + (hint.map { " (\($0))" } ?? "") }
}

// MARK: - Entry points

/// Strict RFC 8259 JSON: validation, parsing and string quoting.
///
/// Accepted: exactly one JSON value of any type, with optional JSON whitespace
/// (space, tab, CR, LF) around it. Rejected: empty input, NaN/Infinity, leading
/// zeros, `1.`, `.5`, `+1`, single quotes, trailing commas, comments, unpaired
/// surrogate `\u` escapes, invalid UTF-8, raw control characters (including NUL) in
/// strings, a byte-order mark, and nesting deeper than `JSON.maxDepth` levels.
///
/// Error offsets: for an unterminated string, the offset of its opening quote; for
/// "unexpected end of input", the input length; otherwise the offending byte.
public enum JSON {
    /// The deepest nesting of arrays and objects accepted (512).
    public static let maxDepth = 512

    /// Validates that `bytes` hold exactly one JSON value (surrounding JSON whitespace
    /// allowed) without building any values. Throws `JSONSyntaxError` only.
    public static func validate(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) {
        var s = JSONScanner(bytes)
        do throws(JSONSyntaxError) {
            try s.start()
            try s.skipValue(depth: 0)
            try s.finish()
        } catch {
            throw s.withHint(error)
        }
    }

    /// Validates that `text` is exactly one JSON value. Throws `JSONSyntaxError` only.
    public static func validate(_ text: String) throws(JSONSyntaxError) {
        // A native string lends its bytes without the copy `withUTF8` needs.
        if let result = text.utf8.withContiguousStorageIfAvailable({ buf -> Result<Void, JSONSyntaxError> in
            do throws(JSONSyntaxError) {
                try validate(UnsafeRawBufferPointer(buf))
                return .success(())
            } catch {
                return .failure(error)
            }
        }) {
            return try result.get()
        }
        var text = text
        let result: Result<Void, JSONSyntaxError> = text.withUTF8 { buf in
            do throws(JSONSyntaxError) {
                try validate(UnsafeRawBufferPointer(buf))
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Parses exactly one JSON value from UTF-8 `bytes`. Throws `JSONSyntaxError` only.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) -> JSONValue {
        var s = JSONScanner(bytes)
        do throws(JSONSyntaxError) {
            try s.start()
            let v = try s.parseValue(depth: 0)
            try s.finish()
            return v
        } catch {
            throw s.withHint(error)
        }
    }

    /// Parses exactly one JSON value from `text`. Throws `JSONSyntaxError` only.
    public static func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        var text = text
        let result: Result<JSONValue, JSONSyntaxError> = text.withUTF8 { buf in
            do throws(JSONSyntaxError) {
                return .success(try parse(UnsafeRawBufferPointer(buf)))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// A JSON string literal for `s`, with the quotes. Escapes `"`, `\` and control
    /// characters (`\n \t \r \b \f`, the others as `\u00XX`); everything else,
    /// including non-ASCII, passes through as UTF-8.
    public static func quote(_ s: String) -> String {
        var out = JSONOutput()
        out.reserve(s.utf8.count + 2)
        out.writeQuoted(s)
        return out.string
    }
}

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
private struct JSONOutput: Sendable {
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

// MARK: - Scanner

/// The byte-level validator/parser. `i` always indexes the next unread byte.
private struct JSONScanner {
    let b: UnsafeRawBufferPointer
    let n: Int
    var i = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        b = bytes
        n = bytes.count
    }

    // MARK: errors

    func fail(_ offset: Int, _ message: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset, message: message)
    }

    var endOfInput: JSONSyntaxError { fail(n, "unexpected end of input") }

    /// "unexpected character 'x'; expected …" for the byte at `at` (or "invalid UTF-8"
    /// if it starts no valid sequence, or end of input when `at == n`).
    func unexpected(_ at: Int, expected: String) -> JSONSyntaxError {
        guard at < n else { return endOfInput }
        let c = b[at]
        let shown: String
        if c >= 0x80 {
            guard let scalar = decodeScalar(at) else { return fail(at, "invalid UTF-8") }
            shown = JSONScanner.codePoint(scalar.value)
        } else if c == 0x27 {
            shown = "\"'\""
        } else if c > 0x20 && c < 0x7F {
            shown = "'" + String(UnicodeScalar(c)) + "'"
        } else {
            shown = JSONScanner.codePoint(UInt32(c))
        }
        return fail(at, "unexpected character \(shown); expected \(expected)")
    }

    /// `error` with a hint when the input looks like a common mistake: single
    /// quotes, a bare word meant as a string, a key without quotes. Runs only on
    /// the error path.
    func withHint(_ error: JSONSyntaxError) -> JSONSyntaxError {
        var e = error
        func isLetter(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A }
        var lo = 0, hi = n
        while lo < hi && (b[lo] == 0x20 || b[lo] == 0x0A || b[lo] == 0x0D || b[lo] == 0x09) { lo += 1 }
        while hi > lo && (b[hi - 1] == 0x20 || b[hi - 1] == 0x0A || b[hi - 1] == 0x0D || b[hi - 1] == 0x09) { hi -= 1 }
        // Short, one-line text can be shown again, fixed.
        let showable = hi - lo <= 60 && !(lo..<hi).contains { b[$0] < 0x20 }
        if e.offset < n && b[e.offset] == 0x27 {
            if showable, hi - lo >= 2, e.offset == lo, b[hi - 1] == 0x27, !(lo + 1..<hi - 1).contains(where: { b[$0] == 0x27 || b[$0] == 0x22 }) {
                e.hint = "JSON needs double quotes: " + JSON.quote(String(decoding: UnsafeRawBufferPointer(rebasing: b[lo + 1..<hi - 1]), as: UTF8.self))
            } else {
                e.hint = "JSON needs double quotes"
            }
        } else if lo < hi && isLetter(b[lo]) {
            e.hint = showable
                ? "a JSON string needs double quotes: " + JSON.quote(String(decoding: UnsafeRawBufferPointer(rebasing: b[lo..<hi]), as: UTF8.self))
                : "a JSON string needs double quotes around it"
        } else if e.offset < n && isLetter(b[e.offset]) && e.message.hasSuffix("expected a string key") {
            e.hint = "JSON keys need double quotes, e.g. {\"key\": 1}"
        }
        return e
    }

    static func codePoint(_ v: UInt32) -> String {
        var h = String(v, radix: 16, uppercase: true)
        while h.utf8.count < 4 { h = "0" + h }
        return "U+" + h
    }

    /// Length of the valid UTF-8 sequence starting at `at` (a byte >= 0x80), or 0.
    @inline(__always)
    func utf8Length(_ at: Int) -> Int {
        let c0 = b[at]
        @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            at + k < n && b[at + k] >= lo && b[at + k] <= hi
        }
        switch c0 {
        case 0xC2...0xDF:
            return cont(1) ? 2 : 0
        case 0xE0:
            return cont(1, 0xA0) && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF:
            return cont(1) && cont(2) ? 3 : 0
        case 0xED:
            return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0
        case 0xF0:
            return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3:
            return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4:
            return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
        default:
            return 0
        }
    }

    func decodeScalar(_ at: Int) -> UnicodeScalar? {
        let len = utf8Length(at)
        guard len > 0 else { return nil }
        var v = UInt32(b[at]) & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07)
        for k in 1..<len { v = (v << 6) | (UInt32(b[at + k]) & 0x3F) }
        return UnicodeScalar(v)
    }

    // MARK: structure

    @inline(__always)
    mutating func skipWhitespace() {
        while i < n {
            let c = b[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { return }
        }
    }

    /// Skips leading whitespace; throws "empty input" if nothing else is there.
    mutating func start() throws(JSONSyntaxError) {
        skipWhitespace()
        if i == n { throw fail(0, "empty input") }
    }

    /// Skips trailing whitespace; throws if anything else follows the value.
    mutating func finish() throws(JSONSyntaxError) {
        skipWhitespace()
        if i < n { throw fail(i, "trailing characters after the JSON value") }
    }

    /// Skips one value starting at `i` (no leading whitespace). `depth` is the number
    /// of enclosing arrays/objects.
    mutating func skipValue(depth: Int) throws(JSONSyntaxError) {
        guard i < n else { throw endOfInput }
        switch b[i] {
        case 0x22: _ = try scanString()
        case 0x7B: try skipObject(depth: depth + 1)
        case 0x5B: try skipArray(depth: depth + 1)
        case 0x74: try literal("true")
        case 0x66: try literal("false")
        case 0x6E: try literal("null")
        case 0x2D, 0x30...0x39: try scanNumber()
        default: throw unexpected(i, expected: "a value")
        }
    }

    @inline(__always)
    mutating func enter(depth: Int) throws(JSONSyntaxError) {
        if depth > JSON.maxDepth { throw fail(i, "nesting deeper than \(JSON.maxDepth) levels") }
        i += 1
        skipWhitespace()
    }

    /// After a ',' in a container: whitespace, then complain about a trailing comma.
    @inline(__always)
    mutating func afterComma(_ close: UInt8) throws(JSONSyntaxError) {
        i += 1
        skipWhitespace()
        if i < n && b[i] == close {
            throw fail(i, "trailing comma before '\(Character(UnicodeScalar(close)))'")
        }
    }

    mutating func skipArray(depth: Int) throws(JSONSyntaxError) {
        try enter(depth: depth)
        if i < n && b[i] == 0x5D { i += 1; return }
        while true {
            try skipValue(depth: depth)
            skipWhitespace()
            guard i < n else { throw endOfInput }
            switch b[i] {
            case 0x2C: try afterComma(0x5D)
            case 0x5D: i += 1; return
            default: throw unexpected(i, expected: "',' or ']'")
            }
        }
    }

    mutating func skipObject(depth: Int) throws(JSONSyntaxError) {
        try enter(depth: depth)
        if i < n && b[i] == 0x7D { i += 1; return }
        while true {
            try memberKey()
            _ = try scanString()
            try colon()
            try skipValue(depth: depth)
            skipWhitespace()
            guard i < n else { throw endOfInput }
            switch b[i] {
            case 0x2C: try afterComma(0x7D)
            case 0x7D: i += 1; return
            default: throw unexpected(i, expected: "',' or '}'")
            }
        }
    }

    @inline(__always)
    mutating func memberKey() throws(JSONSyntaxError) {
        guard i < n else { throw endOfInput }
        if b[i] != 0x22 { throw unexpected(i, expected: "a string key") }
    }

    @inline(__always)
    mutating func colon() throws(JSONSyntaxError) {
        skipWhitespace()
        guard i < n else { throw endOfInput }
        if b[i] != 0x3A { throw unexpected(i, expected: "':'") }
        i += 1
        skipWhitespace()
    }

    /// Matches the ASCII literal `word` (true, false or null) at `i`.
    mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let p = word.utf8Start
        let start = i
        for k in 0..<word.utf8CodeUnitCount {
            guard i < n else { throw endOfInput }
            if b[i] != p[k] { throw fail(start, "invalid literal; expected true, false or null") }
            i += 1
        }
    }

    // MARK: numbers

    @inline(__always)
    func isDigit(_ k: Int) -> Bool { k < n && b[k] &- 0x30 < 10 }

    /// Scans `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` starting at `i`.
    mutating func scanNumber() throws(JSONSyntaxError) {
        if b[i] == 0x2D {
            i += 1
            if !isDigit(i) { throw i < n ? fail(i, "expected a digit after '-'") : endOfInput }
        }
        if b[i] == 0x30 {
            i += 1
            if isDigit(i) { throw fail(i - 1, "leading zeros are not allowed") }
        } else {
            while isDigit(i) { i += 1 }
        }
        if i < n && b[i] == 0x2E {
            i += 1
            if !isDigit(i) { throw i < n ? fail(i, "expected a digit after '.'") : endOfInput }
            while isDigit(i) { i += 1 }
        }
        if i < n && (b[i] | 0x20) == 0x65 {
            i += 1
            if i < n && (b[i] == 0x2B || b[i] == 0x2D) { i += 1 }
            if !isDigit(i) { throw i < n ? fail(i, "expected a digit in the exponent") : endOfInput }
            while isDigit(i) { i += 1 }
        }
    }

    // MARK: strings

    /// Scans and validates a string whose opening quote is at `i`; leaves `i` after the
    /// closing quote. Returns whether it contains escapes.
    mutating func scanString() throws(JSONSyntaxError) -> Bool {
        let start = i
        i += 1
        var escaped = false
        while true {
            // 8 bytes at a time up to the first quote, backslash, control or
            // non-ASCII byte.
            while i + 8 <= n {
                let x = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let ones: UInt64 = 0x0101_0101_0101_0101
                let high: UInt64 = 0x8080_8080_8080_8080
                // Classic "has a byte less than n" / "has a zero byte" bit tricks. A
                // borrow can flag a byte above a real match, never below one, so the
                // lowest flag is the first special byte.
                let q = x ^ (ones &* 0x22)
                let bs = x ^ (ones &* 0x5C)
                let special = (((x &- ones &* 0x20) & ~x) | ((q &- ones) & ~q) | ((bs &- ones) & ~bs) | x) & high
                if special != 0 {
                    i += special.trailingZeroBitCount >> 3
                    break
                }
                i += 8
            }
            guard i < n else { throw fail(start, "unterminated string") }
            let c = b[i]
            if c == 0x22 {
                i += 1
                return escaped
            } else if c == 0x5C {
                escaped = true
                try scanEscape(stringStart: start)
            } else if c < 0x20 {
                throw fail(i, "control character in string")
            } else if c < 0x80 {
                i += 1
            } else {
                let len = utf8Length(i)
                if len == 0 { throw fail(i, "invalid UTF-8") }
                i += len
            }
        }
    }

    @inline(__always)
    func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x30...0x39: return UInt32(c - 0x30)
        case 0x41...0x46: return UInt32(c - 0x41 + 10)
        case 0x61...0x66: return UInt32(c - 0x61 + 10)
        default: return nil
        }
    }

    /// The four hex digits at `at`, or nil.
    func hex4(_ at: Int) -> UInt32? {
        guard at + 4 <= n else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 {
            guard let h = hexValue(b[at + k]) else { return nil }
            v = v << 4 | h
        }
        return v
    }

    /// Validates the escape at `i` (a backslash) and moves past it.
    mutating func scanEscape(stringStart: Int) throws(JSONSyntaxError) {
        guard i + 1 < n else { throw fail(stringStart, "unterminated string") }
        switch b[i + 1] {
        case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74:
            i += 2
        case 0x75:
            guard let u = hex4(i + 2) else { throw fail(i, "invalid \\u escape: expected 4 hex digits") }
            if u >= 0xD800 && u <= 0xDBFF {
                guard i + 7 < n, b[i + 6] == 0x5C, b[i + 7] == 0x75, let lo = hex4(i + 8),
                      lo >= 0xDC00 && lo <= 0xDFFF else {
                    throw fail(i, "unpaired surrogate \\u\(hexText(u))")
                }
                i += 12
            } else if u >= 0xDC00 && u <= 0xDFFF {
                throw fail(i, "unpaired surrogate \\u\(hexText(u))")
            } else {
                i += 6
            }
        default:
            let c = b[i + 1]
            if c > 0x20 && c < 0x7F {
                throw fail(i, "invalid escape \\" + String(UnicodeScalar(c)))
            }
            throw fail(i, "invalid escape: '\\' followed by \(c < 0x80 ? JSONScanner.codePoint(UInt32(c)) : "a non-ASCII character")")
        }
    }

    func hexText(_ u: UInt32) -> String {
        var h = String(u, radix: 16, uppercase: true)
        while h.utf8.count < 4 { h = "0" + h }
        return h
    }

    // MARK: building values

    mutating func parseValue(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard i < n else { throw endOfInput }
        switch b[i] {
        case 0x22:
            return .string(try parseString())
        case 0x7B:
            let d = depth + 1
            try enter(depth: d)
            var members: [JSONMember] = []
            if i < n && b[i] == 0x7D { i += 1; return .object(members) }
            while true {
                try memberKey()
                let key = try parseString()
                try colon()
                members.append(JSONMember(key, try parseValue(depth: d)))
                skipWhitespace()
                guard i < n else { throw endOfInput }
                switch b[i] {
                case 0x2C: try afterComma(0x7D)
                case 0x7D: i += 1; return .object(members)
                default: throw unexpected(i, expected: "',' or '}'")
                }
            }
        case 0x5B:
            let d = depth + 1
            try enter(depth: d)
            var elements: [JSONValue] = []
            if i < n && b[i] == 0x5D { i += 1; return .array(elements) }
            while true {
                elements.append(try parseValue(depth: d))
                skipWhitespace()
                guard i < n else { throw endOfInput }
                switch b[i] {
                case 0x2C: try afterComma(0x5D)
                case 0x5D: i += 1; return .array(elements)
                default: throw unexpected(i, expected: "',' or ']'")
                }
            }
        case 0x74: try literal("true"); return .bool(true)
        case 0x66: try literal("false"); return .bool(false)
        case 0x6E: try literal("null"); return .null
        case 0x2D, 0x30...0x39:
            let start = i
            try scanNumber()
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
        default:
            throw unexpected(i, expected: "a value")
        }
    }

    /// Parses the string at `i` (validated by `scanString`) and decodes its escapes.
    mutating func parseString() throws(JSONSyntaxError) -> String {
        let start = i
        let escaped = try scanString()
        let body = UnsafeRawBufferPointer(rebasing: b[(start + 1)..<(i - 1)])
        if !escaped { return String(decoding: body, as: UTF8.self) }
        // Already validated: every backslash starts a well-formed escape.
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        var k = 0
        let m = body.count
        while k < m {
            let c = body[k]
            if c != 0x5C { out.append(c); k += 1; continue }
            let e = body[k + 1]
            k += 2
            switch e {
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var u = hex4In(body, k)
                k += 4
                if u >= 0xD800 && u <= 0xDBFF {
                    let lo = hex4In(body, k + 2)
                    k += 6
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                }
                appendUTF8(u, to: &out)
            default: out.append(e)   // " \ /
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    func hex4In(_ buf: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 4 | (hexValue(buf[at + k]) ?? 0) }
        return v
    }

    func appendUTF8(_ u: UInt32, to out: inout [UInt8]) {
        if u < 0x80 {
            out.append(UInt8(u))
        } else if u < 0x800 {
            out.append(UInt8(0xC0 | (u >> 6)))
            out.append(UInt8(0x80 | (u & 0x3F)))
        } else if u < 0x10000 {
            out.append(UInt8(0xE0 | (u >> 12)))
            out.append(UInt8(0x80 | ((u >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (u & 0x3F)))
        } else {
            out.append(UInt8(0xF0 | (u >> 18)))
            out.append(UInt8(0x80 | ((u >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((u >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (u & 0x3F)))
        }
    }
}

/// Whether `bytes` are well-formed UTF-8 (no allocation).
public func isValidUTF8<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
    // Arrays and slices (every caller) go through a buffer: this generic function
    // is called from other modules unspecialized, where iterating `C` costs several
    // witness calls per byte (it was a tenth of `enqueue --lines`).
    if let valid = bytes.withContiguousStorageIfAvailable(isValidUTF8(buffer:)) { return valid }
    return decodesAsUTF8(bytes.makeIterator())
}

/// Decodes `bytes` to the end: false at the first ill-formed sequence.
private func decodesAsUTF8<I: IteratorProtocol>(_ bytes: I) -> Bool where I.Element == UInt8 {
    var it = bytes
    var decoder = UTF8()
    while true {
        switch decoder.decode(&it) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}

/// `isValidUTF8` on contiguous bytes: skips the ASCII prefix a byte at a time,
/// decodes the rest.
public func isValidUTF8(buffer: UnsafeBufferPointer<UInt8>) -> Bool {
    var i = 0
    while i < buffer.count && buffer[i] < 0x80 { i += 1 }
    if i == buffer.count { return true }
    return decodesAsUTF8(UnsafeBufferPointer(rebasing: buffer[i...]).makeIterator())
}
