import Testing
@testable import TaskQueue

/// Which handler commands are judged at start, and what is refused: only what
/// surely cannot run.
@Suite struct HandlerCheckTests {
    @Test func firstWordIsJudgedOnlyWhenPlain() {
        #expect(HandlerCheck.firstWord(of: "./resize.sh") == "./resize.sh")
        #expect(HandlerCheck.firstWord(of: "  python3 send.py --x") == "python3")
        #expect(HandlerCheck.firstWord(of: "./a.sh;echo") == "./a.sh")
        #expect(HandlerCheck.firstWord(of: "./a.sh|wc") == "./a.sh")
        #expect(HandlerCheck.firstWord(of: "cd x && ./y") == "cd")
        for unjudged in ["'./my script.sh'", "\"$HOME\"/t", "$TOOL x", "PATH=/opt/bin:$PATH tool", "X=1 ./t.sh",
                         "f() { cat; }; f", "f () { cat; }; f", "~/bin/t", "./t*.sh", "{ cat; }", "! false", "# only a comment", "", "   "] {
            #expect(HandlerCheck.firstWord(of: unjudged) == nil, "\(unjudged)")
        }
    }

    @Test func problems() {
        let path = "/usr/bin:/bin"
        #expect(HandlerCheck.problem(with: "/bin/sh -c true", path: path) == nil)
        #expect(HandlerCheck.problem(with: "cat", path: path) == nil)
        #expect(HandlerCheck.problem(with: "exec cat", path: path) == nil)
        #expect(HandlerCheck.problem(with: "if true; then cat; fi", path: path) == nil)
        #expect(HandlerCheck.problem(with: "no-such-tool-xyz", path: path) == "command 'no-such-tool-xyz' not found in PATH")
        // Without PATH a bare word is not judged (the shell has its own default).
        #expect(HandlerCheck.problem(with: "no-such-tool-xyz", path: nil) == nil)
        #expect(HandlerCheck.problem(with: "/no/such/tool", path: path) == "/no/such/tool not found")
        #expect(HandlerCheck.problem(with: "/tmp", path: path) == "/tmp is a directory, not a program")
        // A directory in PATH named like the command is not a program.
        #expect(HandlerCheck.problem(with: "tmp", path: "/") == "command 'tmp' not found in PATH")
        // No execute bit at all: refused for root too.
        #expect(HandlerCheck.problem(with: "/etc/passwd", path: path)?.hasPrefix("/etc/passwd is not executable") == true)
    }
}
