import BatchKit

extension RunCommand {
    /// The exit status of a run stopped because its requests all failed the same way (a tripped
    /// `--max-consecutive-failures` breaker, or a native run whose model the provider refused
    /// before any job was created).
    static let systematicFailureStatus: Int32 = 5

    /// One message for a run stopped by the breaker: what failed with an example and the fix
    /// (from the library's error), what is recorded, and how to go on or override it.
    static func printSystematicFailure(_ failure: BatchError, stats: RunStats, pending: Int, outputPath: String) {
        var lines = ["batchkit run: \(failure.message)"]
        if failure.message.contains("with tls errors") {
            lines.append("  to trust a private CA: --ca-bundle FILE")
        }
        let notStarted = max(0, pending - stats.completed)
        if stats.failed > 0 {
            lines.append(
                "  \(stats.failed) failed request(s) are recorded in \(outputPath); \(notStarted) were never started and are not. "
                    + "Once fixed, rerun with --retry-failed to send both.")
        } else {
            lines.append("  nothing was submitted; once fixed, run the same command again.")
        }
        lines.append("  to keep going whatever fails: --max-consecutive-failures 0")
        for line in lines { printError(line) }
    }
}
