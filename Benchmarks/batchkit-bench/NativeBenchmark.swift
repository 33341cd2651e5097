import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation

/// Scenario `native`: 50,000 chat requests through `OpenAIBatchProcessor` against the in-process
/// emulator, with a batch that completes at once, end to end (encode, multipart upload, batch
/// create, poll, download of the output file, join). Prints
/// `{"scenario":"native","succeeded":50000,"seconds":...,"peak_rss_mb":...}`.
func runNativeBenchmark() async throws {
    let count = 50_000
    let emulator = ProviderEmulator(configuration: .init(batchDuration: .zero))
    let backend = OpenAIBatchBackend(apiKey: "sk-bench", baseURL: URL(string: "http://emulator.invalid/v1")!, transport: emulator.transport)
    let processor = OpenAIBatchProcessor(
        backend: backend, configuration: .init(pollInterval: .milliseconds(10), maxPollInterval: .milliseconds(50)), clock: ContinuousClock())
    let requests = (0..<count).map { i in
        BatchRequest(id: "native-\(i)", chat: ChatRequest(
            model: "gpt-4o-mini", messages: [.user("Classify the sentiment of review #\(i): arrived quickly, works well, a bit loud.")],
            maxTokens: 20))
    }
    let start = ContinuousClock.now
    var succeeded = 0
    var failed = 0
    var failure: BatchError?
    for await event in processor.processAsync(requests) {
        switch event {
        case .item(let r): if r.isSuccess { succeeded += 1 } else { failed += 1 }
        case .failed(let e): failure = e
        default: break
        }
    }
    let seconds = (ContinuousClock.now - start).seconds
    if let failure { chatter("native: the run failed: \(failure)") }
    chatter("native: \(succeeded) succeeded, \(failed) failed in \(round3(seconds)) s")
    printJSONLine([
        "scenario": "native", "succeeded": .int(succeeded), "seconds": .double(round3(seconds)),
        "peak_rss_mb": .double(round3(peakRSSMegabytes())),
    ])
}
