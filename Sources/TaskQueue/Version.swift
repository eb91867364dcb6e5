/// The release of taskq this library belongs to: what `taskq --version` prints, and
/// what a dashboard or a metrics exporter can report beside its figures.
///
/// (A type named `TaskQueue` would read better, but a type named like its module
/// hides the module's name: `TaskQueue.Queue` would stop compiling in every client.)
public enum TaskQueueVersion {
    /// The version, e.g. "1.0.0" (semantic versioning).
    public static let current = "1.0.0"
}
