public import BatchKit
public import Foundation

extension NativeBatchProcessor where C == ContinuousClock {
    /// A native-batch processor for Anthropic Message Batches (half price): ``NativeBatchProcessor``
    /// over ``AnthropicBatchBackend``.
    ///
    /// ```swift
    /// let processor: any Processor = cheap
    ///     ? NativeBatchProcessor.anthropic()                             // key from ANTHROPIC_API_KEY
    ///     : ConcurrentProcessor(client: AnthropicClient(), configuration: .init(maxConcurrency: 32))
    /// for await event in processor.processAsync(requests) { ... }
    /// ```
    ///
    /// Custom ids are checked against Anthropic's `^[a-zA-Z0-9_-]{1,64}$` and for uniqueness before
    /// anything is sent, work is split over 100,000 requests / 256 MB per batch, and results are
    /// streamed from `results_url`. Parameters come in the order of every provider's factory (see
    /// `NativeBatchProcessor.openAI(...)`); for another clock, build the backend and use
    /// ``NativeBatchProcessor/init(backend:configuration:clock:)``.
    ///
    /// - Parameters:
    ///   - apiKey: the key; `nil` reads `ANTHROPIC_API_KEY`.
    ///   - baseURL: `https://api.anthropic.com` or the emulator's URL.
    ///   - version: the `anthropic-version` header.
    ///   - defaultMaxTokens: `max_tokens` when a request sets none.
    ///   - structuredOutput: how JSON response formats are expressed.
    ///   - extraHeaders: added to every request.
    ///   - transport: the HTTP transport.
    ///   - timeout: time allowed per HTTP call.
    ///   - limits: per-job limits (Anthropic's: 100,000 requests, 256 MB).
    ///   - configuration: polling, splitting, resubmission (see ``NativeBatchProcessor/Configuration``).
    public static func anthropic(
        apiKey: String? = nil, baseURL: URL = URL(string: "https://api.anthropic.com")!, version: String = "2023-06-01",
        defaultMaxTokens: Int = AnthropicWire.defaultMaxTokens, structuredOutput: AnthropicStructuredOutput = .forcedTool,
        extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport = URLSessionTransport(), timeout: Duration? = .seconds(600),
        limits: BatchLimits = AnthropicBatchBackend.defaultLimits, configuration: Configuration = .init()
    ) -> NativeBatchProcessor<ContinuousClock> {
        NativeBatchProcessor(
            backend: AnthropicBatchBackend(
                apiKey: apiKey, baseURL: baseURL, version: version, defaultMaxTokens: defaultMaxTokens,
                structuredOutput: structuredOutput, extraHeaders: extraHeaders, transport: transport, timeout: timeout,
                limits: limits),
            configuration: configuration)
    }
}


extension NativeBatchProcessor {
    /// A native-batch processor over a ``AnthropicBatchBackend`` you configured (your own limits or structured output), on `clock`
    /// (tests pass a `ManualClock`).
    public init(backend: AnthropicBatchBackend, configuration: Configuration = Configuration(), clock: C) {
        self.init(backend: backend as any BatchBackend, configuration: configuration, clock: clock)
    }

    /// A native-batch processor over a ``AnthropicBatchBackend`` you configured, on the continuous clock.
    public init(backend: AnthropicBatchBackend, configuration: Configuration = Configuration()) where C == ContinuousClock {
        self.init(backend: backend as any BatchBackend, configuration: configuration, clock: ContinuousClock())
    }
}
