import Foundation
import Logging
import Testing
@testable import TaskQueue
import TaskQueueConformance

/// Supervisors and workers log through swift-log, so a program that embeds them
/// decides where their messages go and which levels it keeps.
@Suite(.serialized) struct LoggingTests {
    /// Keeps what it is given.
    struct Capture: LogHandler {
        let lines: Locked<[(Logger.Level, String)]>
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            lines.withLock { $0.append((event.level, "\(event.message)")) }
        }
    }

    @Test func messagesGoThroughTheLoggerAnEmbedderSets() {
        let lines = Locked<[(Logger.Level, String)]>([])
        let before = System.logger
        defer { System.logger = before }
        System.logger = Logger(label: "taskq") { _ in Capture(lines: lines) }
        System.log("recovered worker pid 42 (process 7), which exited without cleaning up")
        System.log("lease lost", level: .warning)
        let got = lines.current
        #expect(got.map(\.1) == ["recovered worker pid 42 (process 7), which exited without cleaning up", "lease lost"])
        #expect(got.map(\.0) == [.info, .warning])
    }

    @Test func theCLIsHandlerDropsWhatIsBelowItsLevel() {
        var handler = OneLineLogHandler(label: "taskq")
        #expect(handler.logLevel == .info)
        handler[metadataKey: "k"] = "v"
        #expect(handler[metadataKey: "k"] == "v")
    }
}
