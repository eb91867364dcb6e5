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
