// taskq-bench: taskq's own benchmark, a release-mode executable (see Command.swift
// for the rows, or run it with --help).
//   swift build -c release --static-swift-stdlib && .build/release/taskq-bench [--quick] [--only ROWS] [--json FILE]
#if canImport(Glibc)
import Glibc
#endif

// This executable is also the intermediate process that measures peak RSS
// (see Bench.peakRSS): handled before anything else so that it stays small.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == peakRSSCommand {
    peakRSSIntermediate(CommandLine.arguments)
}
TaskqBench.main()
