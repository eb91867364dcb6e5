/// The numbered PostgreSQL migrations, migrations/postgres/NNNN_name.sql, as SwiftPM
/// embeds them in the binary (`.embedInCode` in Package.swift) and the MigrationList
/// build plugin lists them, in file-name order: the files are the one source of
/// truth, and a new or edited one is in the next build. As (version, file name, SQL);
/// the version is the number the name starts with.
let embeddedPostgresMigrations: [(version: Int, name: String, sql: String)] = migrationFiles.map { f in
    (version: Int(f.name.prefix { $0.isNumber }) ?? 0, name: f.name, sql: String(decoding: f.bytes, as: UTF8.self))
}
