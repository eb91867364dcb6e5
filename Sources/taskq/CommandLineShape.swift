import ArgumentParser
import TaskQueue

// What the command line looks like before the full parser sees it: global options
// given before the command name (as git and cargo allow) are moved after it, and a
// command that does not exist is named, with the closest real one.

/// The options every command takes (`DatabaseOptions`), each with a value.
let globalOptions: Set<String> = ["--db", "--synchronous", "--busy-timeout"]

/// A usage error (exit 64) found before parsing, with a second line pointing to help.
struct CommandLineError: Error {
    let message: String
    let hint: String?
}

/// The command names under `command` (root: `Taskq`); the parser adds "help".
private func commandNames(_ command: ParsableCommand.Type) -> [String] {
    command.configuration.subcommands.map { $0._commandName }
}

private func subcommand(_ name: String, of command: ParsableCommand.Type) -> ParsableCommand.Type? {
    command.configuration.subcommands.first { $0._commandName == name }
}

/// `args` (argv, program name first) with global options before the command name
/// moved to just after the command's path (`schedule add`, `status`…), so that
/// `taskq --db x.db stop` means `taskq stop --db x.db`. Throws a usage error for
/// any other option before the command name, and for an unknown command. Help and
/// version requests before the command are left to the parser.
func normalizedArguments(_ args: [String]) throws -> [String] {
    try checkDurations(args)
    var moved: [String] = []
    var i = 1
    while i < args.count, args[i].hasPrefix("-"), args[i] != "-" {
        let a = args[i]
        // Help and version need no database: the options given so far are dropped.
        if a == "-h" || a == "--help" || a == "--version" { return [args[0]] + Array(args[i...]) }
        if a == "-v" || a == "-V" {
            throw CommandLineError(message: "unknown option '\(a)'; did you mean 'taskq --version'?", hint: nil)
        }
        let name = String(a.split(separator: "=", maxSplits: 1).first ?? "")
        guard globalOptions.contains(name) else {
            let command = args[(i + 1)...].first { commandNames(Taskq.self).contains($0) }
            throw CommandLineError(message: "\(name) goes after the command name: taskq \(command ?? "COMMAND") \(a) …", hint: nil)
        }
        if a.contains("=") {
            moved.append(a)
            i += 1
        } else {
            guard i + 1 < args.count else { throw CommandLineError(message: "\(a) needs a value, e.g. taskq \(a) VALUE status", hint: nil) }
            moved += [a, args[i + 1]]
            i += 2
        }
    }
    guard i < args.count else {
        if moved.isEmpty { return args }
        throw CommandLineError(message: "\(moved.joined(separator: " ")) needs a command after it, e.g. taskq \(moved.joined(separator: " ")) status",
                               hint: "Run 'taskq --help' for the list of commands.")
    }
    // The command's path: a name, and for a group (schedule, kind) its subcommand's.
    var end = i
    var command: ParsableCommand.Type = Taskq.self
    while end < args.count, !args[end].hasPrefix("-"), !command.configuration.subcommands.isEmpty {
        guard let sub = subcommand(args[end], of: command) else {
            // `taskq --db x help stop`: help has no use for the options.
            if args[end] == "help" { return [args[0]] + Array(args[end...]) }
            throw unknownCommand(args[end], known: commandNames(command), parents: Array(args[i..<end]))
        }
        command = sub
        end += 1
    }
    if moved.isEmpty { return args }
    return [args[0]] + Array(args[i..<end]) + moved + Array(args[end...])
}

/// "unknown command 'enqueu'; did you mean 'enqueue'?" and a pointer to the list.
private func unknownCommand(_ word: String, known: [String], parents: [String]) -> CommandLineError {
    let prefix = parents.map { $0 + " " }.joined()
    var message = "unknown command '\(prefix)\(word)'"
    let close = closestNames(to: word, in: known)
    if parents.isEmpty && word == "version" {
        message += "; did you mean 'taskq --version'?"
    } else if !close.isEmpty {
        message += "; did you mean " + close.map { "'\(prefix)\($0)'" }.joined(separator: " or ") + "?"
    }
    return CommandLineError(message: message, hint: "Run 'taskq \(prefix)--help' for the list of commands.")
}

/// Options that take a duration, and the unit words people type after a number.
private let durationOptions: Set<String> = ["--delay", "--timeout", "--backoff-base", "--backoff-cap", "--lease",
                                            "--shutdown-timeout", "--older-than", "--retain", "--interval", "--busy-timeout"]
private let unitWords: [String: String] = [
    "ms": "ms", "msec": "ms", "millisecond": "ms", "milliseconds": "ms",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
]

/// `--delay 10 minutes` (the unit as a word of its own) is refused with the
/// form that works, `--delay 10m`, rather than taking "minutes" as the next
/// argument (for enqueue: the payload).
private func checkDurations(_ args: [String]) throws {
    var i = 1
    while i + 2 < args.count, args[i] != "--" {
        defer { i += 1 }
        guard durationOptions.contains(args[i]), Double(args[i + 1]) != nil,
              let unit = unitWords[args[i + 2].lowercased()] else { continue }
        let option = args[i], number = args[i + 1]
        if option == "--busy-timeout" {
            throw CommandLineError(message: "\(option) \(number) \(args[i + 2]): \(option) takes a number of seconds: \(option) \(number)", hint: nil)
        }
        throw CommandLineError(message: "\(option) \(number) \(args[i + 2]): give the duration as one word, e.g. \(option) \(number)\(unit) (forms: 250ms, 90s, 10m, 2h, 1d)",
                               hint: nil)
    }
}

/// The names nearest to `word`: those it is the start of, else those within two
/// edits (a typo, a swapped pair of letters), nearest first; empty when none is close.
func closestNames(to word: String, in names: [String]) -> [String] {
    let w = Array(word.lowercased())
    if w.count >= 2 {
        let starts = names.filter { $0.hasPrefix(word.lowercased()) }
        if starts.count == 1 { return starts }
    }
    let scored = names.map { (name: $0, distance: editDistance(w, Array($0))) }
    guard let best = scored.map(\.distance).min(), best <= min(2, max(1, w.count / 2)) else { return [] }
    return scored.filter { $0.distance == best }.map(\.name)
}

/// Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`.
private func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
        }
    }
    return d[a.count][b.count]
}
