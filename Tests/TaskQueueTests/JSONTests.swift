import Testing
@testable import TaskQueue

/// Runs `JSON.validate` on raw bytes and returns the error, if any.
private func validateBytes(_ bytes: [UInt8]) -> JSONSyntaxError? {
    bytes.withUnsafeBytes { raw in
        do throws(JSONSyntaxError) {
            try JSON.validate(raw)
            return nil
        } catch {
            return error
        }
    }
}

private func validateError(_ text: String) -> JSONSyntaxError? {
    do throws(JSONSyntaxError) {
        try JSON.validate(text)
        return nil
    } catch {
        return error
    }
}

private func parseError(_ text: String) -> JSONSyntaxError? {
    do throws(JSONSyntaxError) {
        _ = try JSON.parse(text)
        return nil
    } catch {
        return error
    }
}

/// Valid documents.
private let validDocuments: [String] = [
    "null", "true", "false", "0", "-0", "1", "-1", "1.5", "-1.5e3", "1E+10", "1e-10", "0.0001",
    "123456789012345678901234567890", "1.5E-300",
    "\"\"", "\"abc\"", #""a\"b\\c\/d\b\f\n\r\t""#, #""\u00e9\uD83D\uDE00\u0000\uFFFF""#,
    "\"é😀 日本\"", "\"\u{7F}\"",
    "[]", "{}", " [1, 2 ,3] ", "\t\n\r 1 \n", "[[[]]]", #"{"a":{"b":[null,true,false,"x",1.5]}}"#,
    #"{"a":1,"a":2}"#, #"{"":0}"#, #"[{"k":[]},{}]"#, "  \"x\"  ",
]

/// Invalid documents: text, expected message prefix, expected byte offset.
private let invalidDocuments: [(String, String, Int)] = [
    ("", "empty input", 0),
    ("   \n", "empty input", 0),
    ("NaN", "unexpected character 'N'", 0),
    ("Infinity", "unexpected character 'I'", 0),
    ("-Infinity", "expected a digit after '-'", 1),
    ("[nan]", "invalid literal; expected true, false or null", 1),
    ("01", "leading zeros are not allowed", 0),
    ("[-007]", "leading zeros are not allowed", 2),
    ("1.", "unexpected end of input", 2),
    ("[1.]", "expected a digit after '.'", 3),
    (".5", "unexpected character '.'", 0),
    ("+1", "unexpected character '+'", 0),
    ("-", "unexpected end of input", 1),
    ("1e", "unexpected end of input", 2),
    ("1e+", "unexpected end of input", 3),
    ("[1ex]", "expected a digit in the exponent", 3),
    ("0x10", "trailing characters after the JSON value", 1),
    ("'a'", "unexpected character \"'\"", 0),
    (#"{'a':1}"#, "unexpected character \"'\"; expected a string key", 1),
    ("[1,]", "trailing comma before ']'", 3),
    (#"{"a":1,}"#, "trailing comma before '}'", 7),
    ("[1 2]", "unexpected character '2'; expected ',' or ']'", 3),
    ("[1,,2]", "unexpected character ','; expected a value", 3),
    (#"{"a" 1}"#, "unexpected character '1'; expected ':'", 5),
    (#"{"a":}"#, "unexpected character '}'; expected a value", 5),
    ("{a:1}", "unexpected character 'a'; expected a string key", 1),
    (#"{"a":1 "b":2}"#, "unexpected character '\"'; expected ',' or '}'", 7),
    ("// comment\n1", "unexpected character '/'", 0),
    ("/* c */ 1", "unexpected character '/'", 0),
    ("1 // c", "trailing characters after the JSON value", 2),
    ("1 2", "trailing characters after the JSON value", 2),
    ("{} {}", "trailing characters after the JSON value", 3),
    ("\"abc", "unterminated string", 0),
    ("[\"abc\\\"]", "unterminated string", 1),
    ("\"abc\\", "unterminated string", 0),
    (#""\q""#, "invalid escape \\q", 1),
    (#""ab\x41""#, "invalid escape \\x", 3),
    (#""\u12G4""#, "invalid \\u escape", 1),
    (#""\u12""#, "invalid \\u escape", 1),
    (#""\uD800""#, "unpaired surrogate \\uD800", 1),
    (#""\uDC00""#, "unpaired surrogate \\uDC00", 1),
    (#""\uD800\u0041""#, "unpaired surrogate \\uD800", 1),
    (#""\uD83D\uD83D""#, "unpaired surrogate \\uD83D", 1),
    (#""x\uD800"#, "unpaired surrogate \\uD800", 2),
    ("\"a\tb\"", "control character in string", 2),
    ("\"a\nb\"", "control character in string", 2),
    ("\"a\u{0}b\"", "control character in string", 2),
    ("\u{0}", "unexpected character U+0000", 0),
    ("[1]\u{0}", "trailing characters after the JSON value", 3),
    ("tru", "unexpected end of input", 3),
    ("trux", "invalid literal", 0),
    ("nulll", "trailing characters after the JSON value", 4),
    ("fals", "unexpected end of input", 4),
    ("True", "unexpected character 'T'", 0),
    ("nul", "unexpected end of input", 3),
    ("[", "unexpected end of input", 1),
    ("{", "unexpected end of input", 1),
    ("[1", "unexpected end of input", 2),
    (#"{"a""#, "unexpected end of input", 4),
    (#"{"a":"#, "unexpected end of input", 5),
    ("]", "unexpected character ']'; expected a value", 0),
    ("\u{FEFF}1", "unexpected character U+FEFF", 0),
    ("é", "unexpected character U+00E9", 0),
    ("undefined", "unexpected character 'u'", 0),
]

@Suite struct JSONTests {
    @Test func tableHasEnoughCases() {
        #expect(validDocuments.count + invalidDocuments.count >= 40)
    }

    @Test(arguments: validDocuments)
    func validDocumentsAreAccepted(_ text: String) throws {
        #expect(validateError(text) == nil)
        let value = try JSON.parse(text)
        // The compact form parses back to the same value.
        #expect(try JSON.parse(value.compactText) == value)
    }

    @Test(arguments: invalidDocuments)
    func invalidDocumentsAreRejected(_ text: String, _ message: String, _ offset: Int) {
        let v = validateError(text)
        let p = parseError(text)
        #expect(v != nil, "validate accepted \(text.debugDescription)")
        #expect(v?.message.hasPrefix(message) == true, "\(text.debugDescription): got \(String(describing: v))")
        #expect(v?.offset == offset, "\(text.debugDescription): got \(String(describing: v))")
        // parse reports exactly what validate reports.
        #expect(p == v)
    }

    @Test func errorDescription() {
        let e = validateError("[1,]")
        #expect(e?.description == "trailing comma before ']' at byte 3")
        #expect("\(JSONSyntaxError(offset: 7, message: "unterminated string"))" == "unterminated string at byte 7")
    }

    @Test func nestingLimit() {
        let ok = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(validateError(ok) == nil)
        #expect(parseError(ok) == nil)
        let tooDeep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        let e = validateError(tooDeep)
        #expect(e?.message == "nesting deeper than 512 levels")
        #expect(e?.offset == 512)
        #expect(parseError(tooDeep) == e)

        let objOK = String(repeating: #"{"a":"#, count: 511) + "[1]" + String(repeating: "}", count: 511)
        #expect(validateError(objOK) == nil)
        let objDeep = String(repeating: #"{"a":"#, count: 513) + "1" + String(repeating: "}", count: 513)
        #expect(validateError(objDeep)?.message == "nesting deeper than 512 levels")
        #expect(parseError(objDeep)?.message == "nesting deeper than 512 levels")
    }

    @Test func rawBytesAndInvalidUTF8() {
        let q: UInt8 = 0x22
        let cases: [([UInt8], JSONSyntaxError?)] = [
            ([q, 0xC3, 0xA9, q], nil),                                   // é
            ([q, 0xF0, 0x9F, 0x98, 0x80, q], nil),                       // 😀
            ([q, 0xEF, 0xBF, 0xBF, q], nil),                             // U+FFFF
            ([q, 0xF4, 0x8F, 0xBF, 0xBF, q], nil),                       // U+10FFFF
            ([q, 0xFF, q], .init(offset: 1, message: "invalid UTF-8")),
            ([q, 0x61, 0xC3, q], .init(offset: 2, message: "invalid UTF-8")),             // truncated
            ([q, 0xC0, 0x80, q], .init(offset: 1, message: "invalid UTF-8")),             // overlong NUL
            ([q, 0xE0, 0x80, 0xAF, q], .init(offset: 1, message: "invalid UTF-8")),       // overlong
            ([q, 0xED, 0xA0, 0x80, q], .init(offset: 1, message: "invalid UTF-8")),       // encoded surrogate
            ([q, 0xF4, 0x90, 0x80, 0x80, q], .init(offset: 1, message: "invalid UTF-8")), // > U+10FFFF
            ([q, 0x80, q], .init(offset: 1, message: "invalid UTF-8")),                   // lone continuation
            ([q, 0xC3], .init(offset: 1, message: "invalid UTF-8")),
            ([0xFF], .init(offset: 0, message: "invalid UTF-8")),
            ([0x5B, 0x31, 0x2C, 0xC3, 0x28, 0x5D], .init(offset: 3, message: "invalid UTF-8")),
            ([0x5B, 0x00, 0x5D], .init(offset: 1, message: "unexpected character U+0000; expected a value")),
            ([q, 0x61, 0x00, q], .init(offset: 2, message: "control character in string")),
            ([], .init(offset: 0, message: "empty input")),
        ]
        for (bytes, expected) in cases {
            #expect(validateBytes(bytes) == expected, "\(bytes)")
        }
        // Invalid UTF-8 after the value is rejected as trailing garbage.
        #expect(validateBytes([0x31, 0x20, 0x80])?.offset == 2)
    }

    /// Exercises the 8-bytes-at-a-time string scan at every alignment.
    @Test func specialBytesAtEveryPosition() throws {
        for p in 0..<40 {
            let pad = String(repeating: "a", count: p)
            let tail = String(repeating: "b", count: 20)
            #expect(validateError("\"" + pad + "\u{1}" + tail + "\"") == JSONSyntaxError(offset: 1 + p, message: "control character in string"))
            #expect(validateError("\"" + pad + "\u{1F}" + tail + "\"")?.offset == 1 + p)
            #expect(validateError("\"" + pad + "\"" + tail + "\"")?.message == "trailing characters after the JSON value")
            #expect(validateError("\"" + pad + "\\z" + tail + "\"")?.offset == 1 + p)
            #expect(try JSON.parse("\"" + pad + "\\n" + tail + "\"") == .string(pad + "\n" + tail))
            #expect(try JSON.parse("\"" + pad + "é !#[]~\u{7F}" + tail + "\"") == .string(pad + "é !#[]~\u{7F}" + tail))
            var bytes = Array(("\"" + pad + "x" + tail + "\"").utf8)
            bytes[1 + p] = 0xFE
            #expect(validateBytes(bytes) == JSONSyntaxError(offset: 1 + p, message: "invalid UTF-8"))
        }
    }

    @Test func parseBuildsValues() throws {
        let v = try JSON.parse(#" {"id": 3, "name": "x\u00e9\n", "tags": ["a", true, null], "n": -1.50e+03, "o": {}} "#)
        #expect(v == .object([
            JSONMember("id", .number("3")),
            JSONMember("name", .string("xé\n")),
            JSONMember("tags", .array([.string("a"), .bool(true), .null])),
            JSONMember("n", .number("-1.50e+03")),
            JSONMember("o", .object([])),
        ]))
        #expect(v["id"]?.intValue == 3)
        #expect(v["name"]?.stringValue == "xé\n")
        #expect(v["n"]?.doubleValue == -1500)
        #expect(v["n"]?.intValue == nil)
        #expect(v["missing"] == nil)
        #expect(v["tags"]?["a"] == nil)
        #expect(v["tags"]?.arrayValue?.count == 3)
        #expect(v.compactText == #"{"id":3,"name":"xé\n","tags":["a",true,null],"n":-1.50e+03,"o":{}}"#)
    }

    @Test func numberLiteralsArePreserved() throws {
        for literal in ["0", "-0", "1.0", "1.50", "1e2", "1E-7", "-0.0e+00", "12345678901234567890123456789.000000001"] {
            #expect(try JSON.parse(literal) == .number(literal))
            #expect(try JSON.parse("[\(literal)]").compactText == "[\(literal)]")
        }
        #expect(try JSON.parse("9223372036854775807").intValue == Int64.max)
        #expect(try JSON.parse("-9223372036854775808").intValue == Int64.min)
        #expect(try JSON.parse("9223372036854775808").intValue == nil)
        #expect(try JSON.parse("-0").intValue == 0)
        #expect(try JSON.parse("1.0").intValue == nil)
        #expect(try JSON.parse("1e2").intValue == nil)
        #expect(try JSON.parse("1e2").doubleValue == 100)
        #expect(try JSON.parse("0.1").doubleValue == 0.1)
        #expect(try JSON.parse("\"1\"").intValue == nil)
        #expect(try JSON.parse("\"1\"").doubleValue == nil)
        #expect(JSONValue.number("+1").intValue == nil)
        #expect(JSONValue.number("-").intValue == nil)
    }

    @Test func duplicateKeysAreKept() throws {
        let v = try JSON.parse(#"{"a":1,"b":2,"a":3}"#)
        #expect(v.objectMembers?.map(\.key) == ["a", "b", "a"])
        #expect(v["a"] == .number("3"))
        #expect(v.compactText == #"{"a":1,"b":2,"a":3}"#)
    }

    @Test func escapesDecode() throws {
        #expect(try JSON.parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{8}\u{C}\n\r\t"))
        #expect(try JSON.parse(#""\uD83D\uDE00 \u00E9 \u0041 \u0000 \u20AC""#) == .string("😀 é A \u{0} €"))
        #expect(try JSON.parse(#"{"\u006b":1}"#)["k"]?.intValue == 1)
    }

    @Test func quoteEscapes() throws {
        #expect(JSON.quote("") == #""""#)
        #expect(JSON.quote("plain é 😀") == "\"plain é 😀\"")
        #expect(JSON.quote("a\"b\\c") == #""a\"b\\c""#)
        #expect(JSON.quote("\n\t\r\u{8}\u{C}") == #""\n\t\r\b\f""#)
        #expect(JSON.quote("\u{0}\u{1}\u{1F}\u{7F}") == "\"\\u0000\\u0001\\u001f\u{7F}\"")
        #expect(JSON.quote("/") == #""/""#)

        var all = ""
        for c in 0..<0x80 { all.unicodeScalars.append(UnicodeScalar(UInt8(c))) }
        let samples = [all, "x\"y\\z", "日本語 \u{2028} \u{FEFF} 😀", String(repeating: "ab\"\n", count: 50), "\\u0041"]
        for s in samples {
            let q = JSON.quote(s)
            #expect(validateError(q) == nil)
            #expect(try JSON.parse(q) == .string(s))
        }
    }

    @Test func compactTextRoundTrips() throws {
        let doc = """
        {
          "a" : [ 1 , 2.5 , -3e10 , "s\\u0001" ],
          "b" : { "c" : null , "d" : false },
          "e" : "\\ud83d\\ude00"
        }
        """
        let v = try JSON.parse(doc)
        #expect(v.compactText == #"{"a":[1,2.5,-3e10,"s\u0001"],"b":{"c":null,"d":false},"e":"😀"}"#)
        #expect(try JSON.parse(v.compactText) == v)
        #expect(JSONValue.array([]).compactText == "[]")
        #expect(JSONValue.string("q\"").compactText == #""q\"""#)
    }

    @Test func objectWriter() throws {
        var o = JSONObjectWriter()
        #expect(o.text == "{}")
        o.add("id", 3)
        o.add("state", "queued")
        o.addRaw("payload", #"{"x":[1,2]}"#)
        o.addNull("result")
        o.add("big", Int64.max)
        o.add("none", nil as String?)
        o.add("some", "a\"b\n" as String?)
        o.add("n64", nil as Int64?)
        o.add("n64s", Int64(-5) as Int64?)
        o.add("ok", true)
        o.add("bad", false)
        o.add("key\"q", "v")
        #expect(o.text == #"{"id":3,"state":"queued","payload":{"x":[1,2]},"result":null,"big":9223372036854775807,"none":null,"some":"a\"b\n","n64":null,"n64s":-5,"ok":true,"bad":false,"key\"q":"v"}"#)
        // text can be read repeatedly and more members added afterwards.
        #expect(o.text == o.text)
        o.add("last", 1)
        #expect(o.text.hasSuffix(#","last":1}"#))
        let parsed = try JSON.parse(o.text)
        #expect(parsed["payload"]?["x"] == .array([.number("1"), .number("2")]))
        #expect(parsed["key\"q"]?.stringValue == "v")
        o.add("value", JSONValue.array([.null, .string("x")]))
        #expect(o.text.hasSuffix(#","value":[null,"x"]}"#))
    }

    @Test func objectWriterDoubles() throws {
        let cases: [(Double, String)] = [
            (3, "3"), (-42, "-42"), (0, "0"), (-0.0, "-0"), (0.1, "0.1"), (1.5, "1.5"), (-2.25, "-2.25"),
            (1e300, "1e+300"), (1e-7, "1e-07"), (9_007_199_254_740_991, "9007199254740991"),
            (.nan, "null"), (.infinity, "null"), (-.infinity, "null"),
        ]
        for (d, expected) in cases {
            var o = JSONObjectWriter()
            o.add("d", d)
            #expect(o.text == "{\"d\":\(expected)}", "\(d)")
            #expect(validateError(o.text) == nil)
            if d.isFinite {
                #expect(try JSON.parse(o.text)["d"]?.doubleValue == d)
            }
        }
        var o = JSONObjectWriter()
        o.add("x", nil as Double?)
        #expect(o.text == #"{"x":null}"#)
    }

    /// Random mutations of valid documents: validate and parse always agree.
    @Test func validateAndParseAgree() {
        var rng = JSONTestRNG(seed: 42)
        let alphabet = Array("{}[]\",:\\ tfn0123456789-+.eEu\u{1}aé".utf8)
        for _ in 0..<3000 {
            var bytes = Array(validDocuments[Int(rng.next() % UInt64(validDocuments.count))].utf8)
            for _ in 0..<Int(rng.next() % 3) {
                let pos = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count + 1))
                let c = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                switch rng.next() % 3 {
                case 0: bytes.insert(c, at: pos)
                case 1: if pos < bytes.count { bytes[pos] = c }
                default: if pos < bytes.count { bytes.remove(at: pos) }
                }
            }
            let v = validateBytes(bytes)
            let p: JSONSyntaxError? = bytes.withUnsafeBytes { raw in
                do throws(JSONSyntaxError) { _ = try JSON.parse(raw); return nil } catch { return error }
            }
            #expect(v == p, "\(bytes)")
        }
    }
}

/// A small deterministic random number generator for reproducible tests.
private struct JSONTestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
