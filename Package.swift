// swift-tools-version:6.1
import PackageDescription

// The product is synchronous multi-process code (posix_spawn, signals, waitpid) with
// a few process-wide globals for signal flags; Swift 5 language mode keeps those
// simple without pretending they are actor-isolated.

let package = Package(
    name: "taskq",
    products: [
        .library(name: "TaskQueue", targets: ["TaskQueue"]),
        .library(name: "TaskQueueSQLite", targets: ["TaskQueueSQLite"]),
        .library(name: "TaskQueueStores", targets: ["TaskQueueStores"]),
        .executable(name: "taskq", targets: ["taskq"]),
    ],
    // Which SQLite taskq is built on (see the CSQLite target). `--traits BundledSQLite`
    // replaces the default; enabling both links both, and the bundled one is used.
    traits: [
        .trait(name: "SystemSQLite", description: "Use the system's SQLite (libsqlite3-dev): the default."),
        .trait(name: "BundledSQLite", description: "Compile in the bundled SQLite 3.54.1 (Sources/CSQLiteBundled): no libsqlite3 at run time."),
        .default(enabledTraits: ["SystemSQLite"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // SQLite, reached through its C API as the one module CSQLite (its header picks
        // the SQLite; Sources/CSQLite/README.md says what each choice gives):
        // - by default the system's (pkg-config sqlite3; libsqlite3-dev on Debian), so
        //   the distribution's SQLite fixes reach taskq without a taskq release;
        // - with the BundledSQLite trait (swift build --traits BundledSQLite), SQLite
        //   3.54.1 compiled in (Sources/CSQLiteBundled): no libsqlite3 at run time.
        .target(name: "CSQLite", dependencies: [
            .target(name: "CSQLiteSystem", condition: .when(traits: ["SystemSQLite"])),
            .target(name: "CSQLiteBundled", condition: .when(traits: ["BundledSQLite"])),
        ], exclude: ["README.md"]),
        .systemLibrary(name: "CSQLiteSystem", path: "Sources/CSQLiteSystem", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        // Its options are in csqlite.c, which includes sqlite3.c (only with the trait,
        // hence the define). -O2 in debug builds too: the tests drive thousands of tasks
        // through it.
        .target(name: "CSQLiteBundled", path: "Sources/CSQLiteBundled", exclude: ["sqlite3.c"],
                cSettings: [.define("TASKQ_BUNDLED_SQLITE", .when(traits: ["BundledSQLite"])),
                            .unsafeFlags(["-O2", "-Wno-everything"])],
                linkerSettings: [.linkedLibrary("m")]),
        // sqlite3_config (variadic) for process-wide SQLite settings; taskq's busy
        // handler, checkpoint thread and batch-outcome SQL functions.
        .target(name: "CSQLiteTuning", dependencies: ["CSQLite"], path: "Sources/CSQLiteTuning"),
        // A few lines of C for what Swift cannot import: prctl, posix_spawn with a
        // reset signal state, sigaction with a plain C handler.
        .target(name: "CTaskQSystem", path: "Sources/CTaskQSystem"),
        // The core: task model, the storage seam, worker loop, supervisor. No SQL here.
        .target(name: "TaskQueue", dependencies: ["CTaskQSystem", .product(name: "Logging", package: "swift-log")]),
        // The SQLite store: connection, statements, and the schema's migrations, embedded
        // in the binary from migrations/*.sql (Sources/TaskQueueSQLite/migrations links
        // there) and listed in order by the MigrationList plugin, so a new file needs no step.
        .target(name: "TaskQueueSQLite", dependencies: ["TaskQueue", "CSQLite", "CSQLiteTuning"],
                exclude: ["migrations/postgres"],
                resources: [.embedInCode("migrations")], plugins: ["MigrationList"]),
        .plugin(name: "MigrationList", capability: .buildTool(), path: "Plugins/MigrationList"),
        // The one factory that turns a `--db` value into a store (a SQLite path or a
        // PostgreSQL URL), and the entry points of worker programs built on it
        // (TaskQueueProcess). Re-exports TaskQueue and both stores.
        .target(name: "TaskQueueStores", dependencies: ["TaskQueue", "TaskQueueSQLite", "TaskQueuePostgres"]),
        .executableTarget(name: "taskq", dependencies: [
            "TaskQueue", "TaskQueueStores",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Examples are built with the package and run by the tests, so they never rot.
        .executableTarget(name: "taskq-example-producer", dependencies: ["TaskQueueStores"],
                          path: "examples/producer"),
        .executableTarget(name: "taskq-example-worker", dependencies: ["TaskQueueStores"],
                          path: "examples/swift-worker"),
        // Shared by the tests: spawn real processes, wait with deadlines, read rows.
        .target(name: "TaskQueueTestSupport", dependencies: ["TaskQueue", "CTaskQSystem"]),
        // The store conformance suite, split by area: every store runs it with its own factory.
        .target(name: "TaskQueueConformance", dependencies: ["TaskQueue", "TaskQueueTestSupport"]),
        // The benchmarks' worker program: a supervisor whose one Swift handler,
        // bench-noop, writes the harness's audit line.
        .executableTarget(name: "taskq-bench-worker", dependencies: [
            "TaskQueueStores", .product(name: "Logging", package: "swift-log")],
                          path: "Benchmarks/taskq-bench-worker"),
        // taskq's own benchmark (every workload row: W1-W4, CLI, memory, scale) as a
        // release-mode executable that drives the built `taskq` and
        // `taskq-bench-worker` as processes:
        //   swift build -c release --static-swift-stdlib && .build/release/taskq-bench --help
        .executableTarget(name: "taskq-bench", dependencies: [
            "TaskQueue", "TaskQueueTestSupport", "CTaskQSystem",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Benchmarks/taskq-bench"),
        .testTarget(name: "TaskQueueTests", dependencies: ["TaskQueue", "TaskQueueSQLite", "TaskQueueTestSupport",
                                                          "TaskQueueConformance"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TaskQueue", "TaskQueueTestSupport",
                                                             "taskq", "taskq-example-producer", "taskq-example-worker",
                                                             "taskq-bench", "taskq-bench-worker"]),
    ],
    swiftLanguageModes: [.v5]
)

// PostgreSQL: libpq, loaded at run time, and the store built on it.
package.targets += [
    // libpq, loaded at run time when a PostgreSQL queue is opened (Sources/CLibPQ says why).
    .target(name: "CLibPQ", path: "Sources/CLibPQ", linkerSettings: [.linkedLibrary("dl")]),
    .target(name: "TaskQueuePostgres", dependencies: ["TaskQueue", "CLibPQ", "CTaskQSystem"],
            resources: [.embedInCode("migrations")], plugins: ["MigrationList"]),
]
package.products += [.library(name: "TaskQueuePostgres", targets: ["TaskQueuePostgres"])]
if let tests = package.targets.first(where: { $0.name == "TaskQueueTests" }) {
    tests.dependencies.append("TaskQueuePostgres")
    tests.dependencies.append("TaskQueueStores")
}

// `taskq dashboard`: the browser view and /metrics, served by a small HTTP server
// over POSIX sockets in the target itself: no package dependency, and no Foundation
// (with its ICU data) loaded by every taskq command.
package.targets.append(.target(name: "TaskQueueDashboard", dependencies: ["TaskQueue", "TaskQueueStores"]))
for target in package.targets where target.name == "taskq" || target.name == "TaskQueueTests" {
    target.dependencies.append("TaskQueueDashboard")
}
