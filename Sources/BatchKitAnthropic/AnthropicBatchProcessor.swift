import BatchKit
import Foundation

// `AnthropicBatchProcessor` is the name users type for Anthropic Message Batches: a factory for
// ``NativeBatchProcessor`` over ``AnthropicBatchBackend`` (a function, like `OpenAIBatchProcessor`
// and `GeminiBatchProcessor`, so each provider module offers its own without clashing initialisers
// on the shared generic type, and the result plugs into `HybridProcessor` as it is).

/// A native-batch processor for Anthropic Message Batches (half price): ``NativeBatchProcessor``
/// over ``AnthropicBatchBackend``.
///
/// ```swift
/// let processor: any Processor = cheap
///     ? AnthropicBatchProcessor()                                        // key from ANTHROPIC_API_KEY
///     : ConcurrentProcessor(client: AnthropicClient(), configuration: .init(maxConcurrency: 32))
/// for await event in processor.processAsync(requests) { ... }
/// ```
///
/// Custom ids are checked against Anthropic's `^[a-zA-Z0-9_-]{1,64}$` and for uniqueness before
/// anything is sent, work is split over 100,000 requests / 256 MB per batch, and results are
/// streamed from `results_url`.
///
/// - Parameters:
///   - apiKey: the key; `nil` reads `ANTHROPIC_API_KEY`.
///   - baseURL: `https://api.anthropic.com` or the emulator's URL.
///   - defaultMaxTokens: `max_tokens` when a request sets none.
///   - configuration: polling, splitting, resubmission (see ``NativeBatchProcessor/Configuration``).
///   - transport: the HTTP transport.
public func AnthropicBatchProcessor(
    apiKey: String? = nil, baseURL: URL = URL(string: "https://api.anthropic.com")!,
    defaultMaxTokens: Int = AnthropicWire.defaultMaxTokens, configuration: NativeBatchProcessor<ContinuousClock>.Configuration = .init(),
    transport: any HTTPTransport = URLSessionTransport()
) -> NativeBatchProcessor<ContinuousClock> {
    NativeBatchProcessor(
        backend: AnthropicBatchBackend(apiKey: apiKey, baseURL: baseURL, defaultMaxTokens: defaultMaxTokens, transport: transport),
        configuration: configuration)
}

/// A native-batch processor over an Anthropic backend you configured, on any clock (tests pass a
/// `ManualClock`).
public func AnthropicBatchProcessor<C: Clock>(
    backend: AnthropicBatchBackend, configuration: NativeBatchProcessor<C>.Configuration = .init(), clock: C
) -> NativeBatchProcessor<C> where C.Duration == Duration {
    NativeBatchProcessor(backend: backend, configuration: configuration, clock: clock)
}

/// A native-batch processor over an Anthropic backend you configured.
public func AnthropicBatchProcessor(
    backend: AnthropicBatchBackend, configuration: NativeBatchProcessor<ContinuousClock>.Configuration = .init()
) -> NativeBatchProcessor<ContinuousClock> {
    NativeBatchProcessor(backend: backend, configuration: configuration)
}
