import BatchKit
import Foundation

extension RunCommand {
    /// `--mode hybrid`: a native batch first, real time for what is unfinished at the deadline.
    static func runHybrid(
        native: NativeBatchProcessor<ContinuousClock>, provider: ProviderOptions, deadline: Duration, concurrency: Int,
        rpm: Int?, tpm: Int?, prices: PriceTable, journal: Journal, requests: BatchRequestFileReader.Requests,
        stats: inout RunStats, display: ProgressDisplay, model: String?
    ) async throws -> BatchError? {
        throw CommandFailure("--mode hybrid is not available yet in this build (HybridProcessor has not landed); use --mode native or realtime")
    }
}
