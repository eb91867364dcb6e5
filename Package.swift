// swift-tools-version:6.0
import PackageDescription

// The product is synchronous multi-process code (posix_spawn, signals, waitpid) with
// a few process-wide globals for signal flags; Swift 5 language mode keeps those
// simple without pretending they are actor-isolated.

let package = Package(
    name: "taskq",
    products: [
        .library(name: "TaskQueue", targets: ["TaskQueue"]),
        .library(name: "TaskQueueSQLite", targets: ["TaskQueueSQLite"]),
        .executable(name: "taskq", targets: ["taskq"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // SQLite 3.54.1, bundled (Sources/CSQLite/README.md says why and how it is built),
        // reached through its C API.
        // Its options are in csqlite.c, which includes sqlite3.c. -O2 in debug builds too:
        // the tests drive thousands of tasks through it.
        .target(name: "CSQLite", path: "Sources/CSQLite", exclude: ["README.md", "sqlite3.c"],
                cSettings: [.unsafeFlags(["-O2", "-Wno-everything"])], linkerSettings: [.linkedLibrary("m")]),
        // sqlite3_config (variadic) for process-wide SQLite settings.
        .target(name: "CSQLiteTuning", dependencies: ["CSQLite"], path: "Sources/CSQLiteTuning"),
        // A few lines of C for what Swift cannot import: prctl, posix_spawn with a
        // reset signal state, sigaction with a plain C handler.
        .target(name: "CTaskQSystem", path: "Sources/CTaskQSystem"),
        // The core: task model, the storage seam, worker loop, supervisor. No SQL here.
        .target(name: "TaskQueue", dependencies: ["CTaskQSystem"]),
        // The SQLite store: connection, statements, embedded migrations.
        .target(name: "TaskQueueSQLite", dependencies: ["TaskQueue", "CSQLite", "CSQLiteTuning"]),
        .executableTarget(name: "taskq", dependencies: [
            "TaskQueue", "TaskQueueSQLite",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Examples are built with the package and run by the tests, so they never rot.
        .executableTarget(name: "taskq-example-producer", dependencies: ["TaskQueue", "TaskQueueSQLite"],
                          path: "examples/producer"),
        .executableTarget(name: "taskq-example-worker", dependencies: ["TaskQueue", "TaskQueueSQLite"],
                          path: "examples/swift-worker"),
        // Shared by the tests: spawn real processes, wait with deadlines, read rows.
        .target(name: "TaskQueueTestSupport", dependencies: ["TaskQueue", "CTaskQSystem"]),
        // taskq's own benchmark (every workload row: W1-W4, CLI, memory, scale) as a
        // release-mode executable that drives the built `taskq` and
        // `taskq-example-worker` as processes:
        //   swift build -c release --static-swift-stdlib && .build/release/taskq-bench --help
        .executableTarget(name: "taskq-bench", dependencies: [
            "TaskQueue", "TaskQueueTestSupport", "CTaskQSystem",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Benchmarks/taskq-bench"),
        .testTarget(name: "TaskQueueTests", dependencies: ["TaskQueue", "TaskQueueSQLite", "TaskQueueTestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TaskQueue", "TaskQueueTestSupport",
                                                             "taskq", "taskq-example-producer", "taskq-example-worker",
                                                             "taskq-bench"]),
    ],
    swiftLanguageModes: [.v5]
)

// `taskq dashboard`: the browser view and /metrics, served by a small HTTP server
// over POSIX sockets in the target itself: no package dependency, and no Foundation
// (with its ICU data) loaded by every taskq command.
package.targets.append(.target(name: "TaskQueueDashboard", dependencies: ["TaskQueue", "TaskQueueSQLite"]))
for target in package.targets where target.name == "taskq" || target.name == "TaskQueueTests" {
    target.dependencies.append("TaskQueueDashboard")
}
