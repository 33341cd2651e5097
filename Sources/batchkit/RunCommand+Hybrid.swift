import BatchKit
import Foundation

extension RunCommand {
    /// `--mode hybrid`: a native batch first; at the deadline the remote jobs are cancelled, what
    /// finished is kept and the rest runs in real time. Journaled like the other modes. With
    /// `maxCost`, spending over both paths stays within it (see ``HybridProcessor``).
    static func runHybrid(
        native: NativeBatchProcessor<ContinuousClock>, provider: ProviderOptions, deadline: Duration, concurrency: Int,
        rpm: Int?, tpm: Int?, maxConsecutiveFailures: Int, prices: PriceTable, maxCost: Double?, cache: FileResponseCache?, journal: Journal, requests: BatchRequestFileReader.Requests,
        stats: inout RunStats, display: ProgressDisplay, model: String?, interruption: Interruption
    ) async throws -> BatchError? {
        let realtime = ConcurrentProcessor(
            client: provider.client(),
            configuration: .init(
                maxConcurrency: concurrency, requestsPerMinute: rpm, tokensPerMinute: tpm, priceTable: prices,
                maxConsecutiveFailures: maxConsecutiveFailures))
        let hybrid = HybridProcessor(batch: native, realtime: realtime, deadline: deadline, priceTable: prices, maxCost: maxCost)
        return await drain(
            hybrid.withCache(cache, provider: cacheName(provider)).stopping(on: interruption).journaled(journal).processAsync(requests), stats: &stats, display: display, model: model)
    }
}
