import BatchKit
import BatchKitAnthropic
import BatchKitGemini
import BatchKitOpenAI
import Foundation

/// A failure of a command that is not a usage mistake (bad input file, no key, a run that could not
/// go on): printed as one line on stderr, exit code 1.
struct CommandFailure: Error, CustomStringConvertible {
    var message: String
    var exitCode: Int32
    init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
    var description: String { message }

    /// A library error as a one-line failure (the message already names file, line and field).
    init(_ error: BatchError) { self.init(error.message) }
}

/// The providers the tool speaks to.
enum ProviderName: String, CaseIterable, Sendable {
    case openai, anthropic, gemini
    /// Azure OpenAI: OpenAI's wire format under a resource endpoint (`--base-url`), with an
    /// `api-version` and the `api-key` header; the model names the deployment.
    case azure

    /// The environment variable holding the key by default.
    var keyVariable: String {
        switch self {
        case .openai: return "OPENAI_API_KEY"
        case .anthropic: return "ANTHROPIC_API_KEY"
        case .gemini: return "GEMINI_API_KEY"
        case .azure: return "AZURE_OPENAI_API_KEY"
        }
    }

    /// The provider's public API base (`nil` for Azure: every resource has its own).
    var defaultBaseURL: URL? {
        switch self {
        case .openai: return URL(string: "https://api.openai.com/v1")!
        case .anthropic: return URL(string: "https://api.anthropic.com")!
        case .gemini: return URL(string: "https://generativelanguage.googleapis.com")!
        case .azure: return nil
        }
    }

    /// Parses `--provider`.
    init(option: String?) throws {
        guard let option else {
            self = .openai
            return
        }
        guard let p = ProviderName(rawValue: option.lowercased()) else {
            throw UsageError(
                "unknown provider '\(option)' (expected \(ProviderName.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        self = p
    }
}

/// `--provider`, `--base-url`, `--api-version` and `--api-key-env`, resolved to a key, a base URL
/// and a transport, and from them the real-time client and the batch backend.
///
/// The key is never printed: errors name the variable, not its value.
struct ProviderOptions: Sendable {
    /// The options every provider-facing subcommand accepts.
    static let optionNames: Set<String> = ["provider", "base-url", "api-key-env", "ca-bundle", "api-version", "timeout"]

    static let helpText = """
          --provider P         openai (default), anthropic, gemini or azure (Azure OpenAI)
          --base-url URL       API base (OpenAI: including /v1; a bare host gets /v1 added;
                               azure: the resource, https://RESOURCE.openai.azure.com, required)
          --api-version V      azure: the api-version of every call, e.g. 2024-10-21 (required)
          --api-key-env NAME   read the key from NAME instead of OPENAI_API_KEY /
                               ANTHROPIC_API_KEY / GEMINI_API_KEY / AZURE_OPENAI_API_KEY
                               (azure: --model or each line's model names the deployment)
          --ca-bundle FILE     also trust the CA certificates in this PEM file for https
                               (SSL_CERT_FILE and SSL_CERT_DIR are honoured too)
          --timeout D          longest wait for one HTTP exchange with the provider (a real-time
                               call, a status poll, a job create) before it fails as a timeout,
                               and is retried where that is safe (default 10m). Anthropic and
                               Gemini results downloads and Gemini uploads are included; OpenAI
                               file uploads and downloads keep 1h
        """

    let provider: ProviderName
    let apiKey: String
    let baseURL: URL
    let transport: any HTTPTransport
    /// Azure's `api-version` (only for ``ProviderName/azure``).
    let apiVersion: String?
    /// `--timeout`: the deadline of one HTTP exchange (the providers' 10 minutes by default).
    let timeout: Duration

    init(
        provider: ProviderName, apiKey: String, baseURL: URL, transport: any HTTPTransport, apiVersion: String? = nil,
        timeout: Duration = .seconds(600)
    ) {
        self.provider = provider
        self.apiKey = apiKey
        self.baseURL = baseURL
        self.transport = transport
        self.apiVersion = apiVersion
        self.timeout = timeout
    }

    /// Resolves the options; the key comes from the environment.
    ///
    /// - Throws: ``UsageError`` for an unknown provider, a bad URL, or Azure without `--base-url`
    ///   or `--api-version` (or `--api-version` for another provider); ``CommandFailure`` when no
    ///   key is set.
    init(_ arguments: Arguments, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let provider = try ProviderName(option: arguments.string("provider"))
        var base = provider.defaultBaseURL
        if let text = arguments.string("base-url") {
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
                url.host != nil
            else { throw UsageError("option '--base-url' needs an http(s) URL, got '\(text)'") }
            base = url
            if provider == .openai, url.path.isEmpty || url.path == "/" {
                base = URL(string: text.hasSuffix("/") ? text + "v1" : text + "/v1")!
            }
            if provider == .azure {
                // The resource endpoint; the client adds /openai/... itself.
                var t = text
                while t.hasSuffix("/") { t.removeLast() }
                if t.hasSuffix("/openai") { t.removeLast("/openai".count) }
                base = URL(string: t)!
            }
        }
        let apiVersion = arguments.string("api-version")
        if provider == .azure {
            guard base != nil else {
                throw UsageError("--provider azure needs --base-url https://RESOURCE.openai.azure.com (the resource's endpoint)")
            }
            guard let apiVersion, !apiVersion.isEmpty else {
                throw UsageError("--provider azure needs --api-version (for example 2024-10-21)")
            }
        } else if apiVersion != nil {
            throw UsageError("--api-version applies to --provider azure")
        }
        guard let base else { throw UsageError("missing --base-url") }
        let variable = arguments.string("api-key-env") ?? provider.keyVariable
        var key = environment[variable]
        if key?.isEmpty ?? true, arguments.string("api-key-env") == nil, provider == .gemini {
            key = environment["GOOGLE_API_KEY"]
        }
        guard let key, !key.isEmpty else {
            throw CommandFailure("no API key: set \(variable) (or name another variable with --api-key-env)")
        }
        var tls = TLSConfiguration()
        if let bundle = arguments.string("ca-bundle") {
            guard FileManager.default.isReadableFile(atPath: bundle) else {
                throw UsageError("option '--ca-bundle': cannot read '\(bundle)'")
            }
            tls.trustRoots = [.file(bundle)]
        }
        // The lean HTTP/1.1 client, with its own TLS on Linux, file transfers included; proxied hosts
        // go on through URLSession.
        self.init(
            provider: provider, apiKey: key, baseURL: base, transport: PlainHTTPTransport(configuration: .init(tls: tls)),
            apiVersion: apiVersion, timeout: try arguments.duration("timeout") ?? .seconds(600))
    }

    /// The real-time client.
    func client() -> any ModelClient {
        switch provider {
        case .openai: return OpenAIClient(apiKey: apiKey, baseURL: baseURL, transport: transport, timeout: timeout)
        case .anthropic: return AnthropicClient(apiKey: apiKey, baseURL: baseURL, transport: transport, timeout: timeout)
        case .gemini: return GeminiClient(apiKey: apiKey, baseURL: baseURL, transport: transport, timeout: timeout)
        case .azure:
            // The request's model (from --model or the line) is the deployment's name.
            return OpenAIClient.azure(
                endpoint: baseURL, apiKey: apiKey, apiVersion: apiVersion ?? "", transport: transport, timeout: timeout)
        }
    }

    /// The native batch backend.
    func backend() -> any BatchBackend {
        switch provider {
        case .openai: return OpenAIBatchBackend(apiKey: apiKey, baseURL: baseURL, transport: transport, timeout: timeout)
        case .anthropic: return AnthropicBatchBackend(apiKey: apiKey, baseURL: baseURL, transport: transport, timeout: timeout)
        case .gemini: return GeminiBatchBackend(apiKey: apiKey, baseURL: baseURL, transport: transport, timeout: timeout)
        case .azure:
            return OpenAIBatchBackend.azure(
                endpoint: baseURL, apiKey: apiKey, apiVersion: apiVersion ?? "", transport: transport, timeout: timeout)
        }
    }
}

extension Arguments {
    /// A duration option such as `90s`, `30m`, `2h`, `1d`, `250ms` (a bare number is seconds).
    func duration(_ name: String) throws -> Duration? {
        guard let text = string(name) else { return nil }
        guard let d = parseDuration(text), d > .zero else {
            throw UsageError("option '--\(name)' needs a duration such as 90s, 30m or 2h, got '\(text)'")
        }
        return d
    }

    /// The single positional argument a command needs, or a usage error naming it.
    func requiredPositional(_ what: String) throws -> String {
        guard let first = positional.first else { throw UsageError("missing \(what)") }
        return first
    }
}

/// Parses `90s`, `30m`, `2h`, `1d`, `250ms`, `1.5h`; a bare number is seconds.
func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    for (suffix, scale) in units where t.hasSuffix(suffix) {
        guard let n = Double(t.dropLast(suffix.count)), n.isFinite, n >= 0 else { continue }
        return .milliseconds(Int64((n * scale * 1000).rounded()))
    }
    guard let n = Double(t), n.isFinite, n >= 0 else { return nil }
    return .milliseconds(Int64((n * 1000).rounded()))
}

/// Formats a duration as `1.2s`, `3m 05s`, `2h 10m`.
func formatDuration(_ d: Duration) -> String {
    let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    if seconds < 60 { return String(format: "%.1fs", seconds) }
    let s = Int(seconds.rounded())
    if s < 3600 { return String(format: "%dm %02ds", s / 60, s % 60) }
    return String(format: "%dh %02dm", s / 3600, (s % 3600) / 60)
}

/// `$0.0123`, or `-` when unknown.
func formatDollars(_ value: Double?) -> String {
    guard let value else { return "-" }
    if value == 0 { return "$0" }
    if value < 0.01 { return String(format: "$%.5f", value) }
    if value < 100 { return String(format: "$%.4f", value) }
    return String(format: "$%.2f", value)
}

/// `12,345`.
func formatCount(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return n < 0 ? "-" + out : out
}

/// Left-aligned text columns separated by two spaces.
func formatTable(_ rows: [[String]], rightAligned: Set<Int> = []) -> String {
    guard let columns = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    return rows.map { row in
        row.enumerated().map { i, cell in
            let pad = String(repeating: " ", count: widths[i] - cell.count)
            return rightAligned.contains(i) ? pad + cell : (i == row.count - 1 ? cell : cell + pad)
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}
