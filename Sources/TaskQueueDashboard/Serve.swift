#if canImport(Glibc)
import Glibc
#endif
import TaskQueue

extension Dashboard {
    /// Serves until SIGINT or SIGTERM, then stops accepting, ends the event
    /// streams and returns. `ready` gets the URL once the socket listens.
    package func serve(ready: (String) -> Void) throws {
        // Signals are taken by sigwait on this thread alone: blocked here before any
        // thread starts, so every thread inherits the mask.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
        let server = try HTTPServer(host: options.host, port: options.port) { [self] in handle($0) }
        feed.start(watch: store.dashboardChangeWatch, signal: store.makeChangeSignal(claims: false)) { [self] in
            try read { try store.dashboardChangeMark() }
        }
        aggregator.start(self)
        server.start()
        let shown = options.host.contains(":") ? "[\(options.host)]" : options.host
        ready("http://\(shown):\(server.port)/")
        var sig: Int32 = 0
        sigwait(&set, &sig)
        server.stop()
        feed.stop()
    }
}
