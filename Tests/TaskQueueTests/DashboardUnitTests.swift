import Testing
@testable import TaskQueueDashboard
import TaskQueue

/// The dashboard's small pure parts: escaping, request parsing, the token and
/// host rules, the Prometheus writer.
@Suite struct DashboardUnitTests {
    @Test func htmlEscapingLeavesNoMarkup() {
        #expect(escape("<script>alert('x')</script> & \"q\"") == "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;")
    }

    @Test func queryStringsAndFormsDecode() {
        let q = parseQuery("path=%24.user.id&value=a+b&empty=&x")
        #expect(q.map(\.0) == ["path", "value", "empty", "x"])
        #expect(q.map(\.1) == ["$.user.id", "a b", "", ""])
        #expect(percentDecode("%E2%9C%93%zz") == "✓%zz")
        #expect(percentDecode(percentEncode("a b/ü&=")) == "a b/ü&=")
    }

    @Test func aTokenFileLosesOnlyItsTrailingNewline() {
        #expect("secret\n".trimmingNewline == "secret")
        #expect("secret\r\n".trimmingNewline == "secret")
        #expect("secret".trimmingNewline == "secret")
        #expect("secret\n\n".trimmingNewline == "secret\n")
        #expect(constantTimeEqual("abc", "abc") && !constantTimeEqual("abc", "abd") && !constantTimeEqual("abc", "abcd"))
    }

    @Test func onlyLoopbackHostNamesPassWithoutAToken() {
        for ok in ["127.0.0.1:8080", "localhost:1", "[::1]:8080", "127.0.0.1", "localhost"] { #expect(isLoopbackHost(ok), "\(ok)") }
        for bad in ["evil.example", "evil.example:8080", "10.0.0.1:8080", "localhost.evil.example", "[::2]:80", nil] {
            #expect(!isLoopbackHost(bad), "\(bad ?? "nil")")
        }
    }

    @Test func metricsTextEscapesLabelsAndAddsUpBuckets() {
        var w = MetricsWriter()
        w.family("m_total", "counter", "help")
        w.sample("m_total", [("queue", "a\"b\\c\nd")], Int64(3))
        var b = BucketCounts(buckets: 2)
        b.counts = [1, 2, 4]
        b.sum = 1.5
        w.histogram("h_seconds", [("queue", "q")], bounds: [0.5, 1], b)
        #expect(w.text == """
            # HELP m_total help
            # TYPE m_total counter
            m_total{queue="a\\"b\\\\c\\nd"} 3
            h_seconds_bucket{queue="q",le="0.5"} 1
            h_seconds_bucket{queue="q",le="1"} 3
            h_seconds_bucket{queue="q",le="+Inf"} 7
            h_seconds_sum{queue="q"} 1.5
            h_seconds_count{queue="q"} 7

            """)
    }

    @Test func prettyJSONIndentsAndKeepsOtherText() {
        #expect(prettyJSON("{\"a\":[1,{\"b\":null}],\"c\":{}}") == "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {}\n}")
        #expect(prettyJSON("not json") == "not json")
    }
}
