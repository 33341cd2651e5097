public import BatchKit
public import Foundation

extension NativeBatchProcessor where C == ContinuousClock {
    /// A native-batch processor for OpenAI: ``NativeBatchProcessor`` over ``OpenAIBatchBackend``
    /// (Files + Batches, half price, results within 24 h).
    ///
    /// The three providers' factories (``openAI(apiKey:baseURL:organization:project:extraHeaders:transport:timeout:limits:configuration:)``,
    /// `.anthropic(...)`, `.gemini(...)`) take their parameters in one order — key, base URL,
    /// the provider's own options, extra headers, transport, timeout, limits, configuration — with
    /// the same defaults. For another clock (tests pass a `ManualClock`), build the backend and use
    /// ``NativeBatchProcessor/init(backend:configuration:clock:)``.
    ///
    /// ```swift
    /// let processor = NativeBatchProcessor.openAI(configuration: .init(pollInterval: .seconds(30)))
    /// for await event in processor.processAsync(requests) { ... }
    /// ```
    ///
    /// - Parameters:
    ///   - apiKey: `nil` reads `OPENAI_API_KEY`.
    ///   - baseURL: the API base including `/v1`.
    ///   - organization: sent as `OpenAI-Organization`.
    ///   - project: sent as `OpenAI-Project`.
    ///   - extraHeaders: added to every request (they replace BatchKit's headers of the same name).
    ///   - transport: the HTTP transport.
    ///   - timeout: time allowed per API call (file uploads and downloads have the backend's
    ///     ``OpenAIBatchBackend/uploadTimeout``).
    ///   - limits: job limits (OpenAI's: 50,000 requests and 200 MB per file).
    ///   - configuration: polling, resubmission, max wait... of the processor.
    public static func openAI(
        apiKey: String? = nil, baseURL: URL = URL(string: "https://api.openai.com/v1")!, organization: String? = nil,
        project: String? = nil, extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport = URLSessionTransport(),
        timeout: Duration? = .seconds(600), limits: BatchLimits = OpenAIBatchBackend.defaultLimits,
        configuration: Configuration = .init()
    ) -> NativeBatchProcessor<ContinuousClock> {
        NativeBatchProcessor(
            backend: OpenAIBatchBackend(
                apiKey: apiKey, baseURL: baseURL, organization: organization, project: project, extraHeaders: extraHeaders,
                transport: transport, timeout: timeout, limits: limits),
            configuration: configuration)
    }
}


extension NativeBatchProcessor {
    /// A native-batch processor over a ``OpenAIBatchBackend`` you configured (Azure, your own limits), on `clock`
    /// (tests pass a `ManualClock`).
    public init(backend: OpenAIBatchBackend, configuration: Configuration = Configuration(), clock: C) {
        self.init(backend: backend as any BatchBackend, configuration: configuration, clock: clock)
    }

    /// A native-batch processor over a ``OpenAIBatchBackend`` you configured, on the continuous clock.
    public init(backend: OpenAIBatchBackend, configuration: Configuration = Configuration()) where C == ContinuousClock {
        self.init(backend: backend as any BatchBackend, configuration: configuration, clock: ContinuousClock())
    }
}
