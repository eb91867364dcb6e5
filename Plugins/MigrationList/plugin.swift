import Foundation
import PackagePlugin

/// Lists the TaskQueueSQLite target's migrations for `Migrator`, at every build.
///
/// SwiftPM embeds each migrations/*.sql file in the code (`.embedInCode` in
/// Package.swift) as `PackageResources.<name>`, but gives no list of them. This
/// writes one, in file-name order, so a file added to migrations/ is applied with no
/// other step: `let migrationFiles: [(name: String, bytes: [UInt8])]`.
@main struct MigrationList: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let module = target as? SourceModuleTarget else { return [] }
        let files = module.sourceFiles.map(\.url)
            .filter { $0.pathExtension == "sql" && $0.deletingLastPathComponent().lastPathComponent == "migrations" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        var text = "// Generated at build time by Plugins/MigrationList from migrations/*.sql.\n\n"
        text += "/// The migration files in order, as (file name, bytes).\n"
        text += "let migrationFiles: [(name: String, bytes: [UInt8])] = [\n"
        for f in files {
            text += "    (\"\(f.lastPathComponent)\", PackageResources.\(Self.resourceName(f.lastPathComponent))),\n"
        }
        text += "]\n"
        let out = context.pluginWorkDirectoryURL.appending(path: "MigrationFiles.swift")
        return [.buildCommand(displayName: "Listing migrations", executable: URL(fileURLWithPath: "/bin/sh"),
                              arguments: ["-c", "printf '%s' \"$1\" > \"$2\"", "sh", text, out.path],
                              inputFiles: files, outputFiles: [out])]
    }

    /// The name SwiftPM gives a file's bytes: every character that cannot be in an
    /// identifier, and a leading digit, becomes '_' ('0007_x.sql' is `_007_x_sql`).
    static func resourceName(_ file: String) -> String {
        String(file.enumerated().map { i, c in
            c.isASCII && (c.isLetter || c.isNumber || c == "_") && !(i == 0 && c.isNumber) ? c : "_"
        })
    }
}
