import BatchKit
import Foundation

extension ProviderConnection {
    /// Anthropic's configuration of the core connection, shared by ``AnthropicClient`` and
    /// ``AnthropicBatchBackend``: the key in `x-api-key` (required), the `anthropic-version`
    /// header, Anthropic's error classification and `anthropic-ratelimit-*` headers. Paths start
    /// with `/v1/`.
    static func anthropic(
        apiKey: String?, baseURL: URL, version: String, extraHeaders: HTTPHeaders, transport: any HTTPTransport, timeout: Duration?
    ) -> ProviderConnection {
        ProviderConnection(
            baseURL: baseURL, key: APIKey(apiKey, environment: "ANTHROPIC_API_KEY"), auth: .header("x-api-key"),
            missingKeyMessage: "no Anthropic API key: pass apiKey or set ANTHROPIC_API_KEY",
            headers: ["anthropic-version": version, "accept": "application/json"], extraHeaders: extraHeaders,
            transport: transport, timeout: timeout,
            decodeError: { AnthropicWire.error(status: $0, headers: $1, body: $2) },
            rateLimitParser: .anthropic)
    }

    /// The `anthropic-version` header sent.
    var anthropicVersion: String { headers["anthropic-version"] ?? "" }
}
