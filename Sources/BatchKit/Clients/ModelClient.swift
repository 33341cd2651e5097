import Foundation

/// The real-time seam: something that answers one request.
///
/// The provider clients (`OpenAIClient`, `AnthropicClient`, `GeminiClient`) conform; wrap your own
/// client by conforming or with ``ClosureClient``. Clients do not retry: ``ConcurrentProcessor``
/// is the one retry layer. Throw a ``BatchError`` to say whether a failure is retryable and how
/// long to wait; other errors go through the processor's classifier.
public protocol ModelClient: Sendable {
    func send(_ request: BatchRequest) async throws -> ModelResponse

    /// Checks, before anything is sent, that this client can express the request. The default
    /// accepts everything.
    func validate(_ request: BatchRequest) throws(BatchError)
}

extension ModelClient {
    public func validate(_ request: BatchRequest) throws(BatchError) {}
}

/// A ``ModelClient`` backed by a closure.
///
/// ```swift
/// let client = ClosureClient { request in
///     let text = try await myLLM.complete(request)          // your own client
///     return ModelResponse(text: text)
/// } classify: { error in
///     (error as? MyError)?.isThrottle == true
///         ? BatchError(.rateLimited, "throttled", retryAfter: .seconds(2))
///         : BatchError(wrapping: error)
/// }
/// ```
public struct ClosureClient: ModelClient {
    let body: @Sendable (BatchRequest) async throws -> ModelResponse
    let classify: (@Sendable (any Error) -> BatchError)?

    /// - Parameters:
    ///   - send: answers one request.
    ///   - classify: turns your errors into ``BatchError``s (retryable or not, retry-after). Without
    ///     it, errors go through ``BatchError/init(wrapping:)``.
    public init(
        _ send: @escaping @Sendable (BatchRequest) async throws -> ModelResponse,
        classify: (@Sendable (any Error) -> BatchError)? = nil
    ) {
        self.body = send
        self.classify = classify
    }

    public func send(_ request: BatchRequest) async throws -> ModelResponse {
        do {
            return try await body(request)
        } catch let error as BatchError {
            throw error
        } catch {
            if let classify, !(error is CancellationError) { throw classify(error) }
            throw error
        }
    }
}
