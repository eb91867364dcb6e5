#if canImport(Glibc)
import Glibc
#endif

/// What a supervisor checks about a shell-command handler before it starts, so a
/// handler that cannot run is refused at once instead of burning every attempt of
/// every task of its kind. Only what is surely wrong is refused: the command's
/// first word, when it is a plain word (no quotes, expansions or assignments), must
/// name an executable file. A word with a `/` is a path (relative to the working
/// directory, where handlers run); a bare word is looked up in PATH unless the shell
/// could run it without PATH (a builtin or reserved word, or a function defined in
/// the command itself). Anything else is left to fail per attempt, as it always could.
package enum HandlerCheck {
    /// Why `command` cannot run, or nil when it may. `path`: the PATH the handlers
    /// get (nil: not set, so bare words are not checked).
    package static func problem(with command: String, path: String?) -> String? {
        guard let word = firstWord(of: command) else { return nil }
        if word.contains("/") {
            var st = stat()
            guard stat(word, &st) == 0 else {
                return "\(word) not found" + (word.hasPrefix("/") ? "" : " (relative to \(workingDirectory()))")
            }
            if st.st_mode & S_IFMT == S_IFDIR { return "\(word) is a directory, not a program" }
            if access(word, X_OK) != 0 {
                return "\(word) is not executable (chmod +x \(word), or run it with its interpreter: sh \(word))"
            }
            return nil
        }
        guard let path, !shellRunsWithoutPath.contains(word) else { return nil }
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + word
            var st = stat()
            if stat(candidate, &st) == 0, st.st_mode & S_IFMT != S_IFDIR, access(candidate, X_OK) == 0 { return nil }
        }
        return "command '\(word)' not found in PATH"
    }

    /// The first word of `command` when it is plain enough to check: nil for a
    /// leading assignment (`PATH=… tool`), quotes, expansions, globs, a tilde, a
    /// function definition (`f() …`), or a command without words.
    static func firstWord(of command: String) -> String? {
        let trimmed = command.drop { $0 == " " || $0 == "\t" || $0 == "\n" }
        let end = trimmed.firstIndex { " \t\n;&|<>()".contains($0) } ?? trimmed.endIndex
        let word = String(trimmed[..<end])
        if word.isEmpty { return nil }
        if word.contains(where: { "'\"\\$`*?[]{}~=#!".contains($0) }) { return nil }
        // `f() { …; }; f`: a function the command defines for itself.
        let after = trimmed[end...].drop { $0 == " " || $0 == "\t" }
        if after.hasPrefix("(") { return nil }
        return word
    }

    /// Words /bin/sh runs without looking in PATH: POSIX reserved words and special
    /// builtins, and the regular builtins of dash and bash.
    static let shellRunsWithoutPath: Set<String> = [
        "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "in", "function",
        "select", "time", "coproc",
        ".", ":", "break", "continue", "eval", "exec", "exit", "export", "readonly", "return", "set", "shift",
        "times", "trap", "unset", "alias", "bg", "cd", "command", "false", "fc", "fg", "getopts", "hash", "jobs",
        "kill", "local", "printf", "pwd", "read", "test", "true", "type", "ulimit", "umask", "unalias", "wait",
        "echo", "source", "let", "declare", "typeset", "builtin", "enable", "shopt", "history", "disown", "suspend",
        "pushd", "popd", "dirs", "mapfile", "readarray", "caller", "compgen", "complete", "help", "logout", "chdir",
    ]

    private static func workingDirectory() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return "the working directory" }
        return String(cString: buf)
    }
}
