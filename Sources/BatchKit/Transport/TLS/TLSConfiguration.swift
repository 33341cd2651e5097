import Foundation

/// How BatchKit verifies the servers it talks to over `https://`.
///
/// The default trusts the system's certificate store, which `SSL_CERT_FILE` and `SSL_CERT_DIR`
/// extend (a PEM bundle and a hashed directory, as OpenSSL and Python read them). Add roots of
/// your own — a corporate TLS-inspecting proxy, a private gateway, a test CA — with
/// ``init(trustRoots:usesSystemTrustRoots:minimumVersion:)``:
///
/// ```swift
/// let tls = TLSConfiguration(trustRoots: [.file("/etc/corp/ca-bundle.pem")])
/// let transport = PlainHTTPTransport(configuration: .init(tls: tls))
/// let client = OpenAIClient(apiKey: key, transport: transport)
/// ```
///
/// Verification is always on: the chain must lead to a trusted root, every certificate must be
/// within its validity dates, and the server's certificate must name the host (DNS or IP
/// subject alternative names). SNI is sent for host names, ALPN offers `http/1.1`, and nothing
/// older than ``minimumVersion`` is negotiated.
///
/// Where it applies: ``PlainHTTPTransport`` on Linux, which speaks TLS itself through the
/// system's OpenSSL (`libssl.so.3`, loaded at run time). URLSession cannot take custom roots on
/// Linux, so when OpenSSL cannot be loaded and custom roots are set, `https://` requests fail
/// with a ``BatchError/Code/tls`` error that says so instead of silently ignoring the roots.
public struct TLSConfiguration: Sendable, Hashable {
    /// A source of trusted root certificates.
    public struct TrustRoot: Sendable, Hashable, CustomStringConvertible {
        enum Kind: Sendable, Hashable {
            case file
            case directory
        }
        let kind: Kind
        /// The path of the PEM file or directory.
        public let path: String

        /// A PEM file holding one or more certificates (a CA bundle).
        public static func file(_ path: String) -> TrustRoot { TrustRoot(kind: .file, path: path) }
        /// A directory of PEM certificates named by subject hash (as made by `openssl rehash`).
        public static func directory(_ path: String) -> TrustRoot { TrustRoot(kind: .directory, path: path) }

        /// The path.
        public var description: String { path }
    }

    /// The oldest TLS version that may be negotiated.
    public enum Version: Sendable, Hashable {
        /// TLS 1.2 (the default).
        case tls12
        /// TLS 1.3.
        case tls13
    }

    /// Roots trusted in addition to (or, with ``usesSystemTrustRoots`` off, instead of) the system's.
    public var trustRoots: [TrustRoot]
    /// Whether the system's store (and `SSL_CERT_FILE` / `SSL_CERT_DIR`) is trusted too.
    public var usesSystemTrustRoots: Bool
    /// The oldest version negotiated; TLS 1.2 unless set.
    public var minimumVersion: Version

    /// Creates a configuration. With no arguments: the system's roots, TLS 1.2 or later.
    public init(trustRoots: [TrustRoot] = [], usesSystemTrustRoots: Bool = true, minimumVersion: Version = .tls12) {
        self.trustRoots = trustRoots
        self.usesSystemTrustRoots = usesSystemTrustRoots
        self.minimumVersion = minimumVersion
    }

    /// Whether anything differs from the system default (roots of its own, or no system roots).
    var hasCustomTrust: Bool { !trustRoots.isEmpty || !usesSystemTrustRoots }
}

extension BatchError.Code {
    /// A TLS connection could not be made: the certificate was not trusted, had expired, did not
    /// name the host, or the handshake failed. Not retried: trying again meets the same certificate.
    public static let tls = BatchError.Code(rawValue: "tls")
}

/// Why a TLS connection failed, in the words BatchKit reports it.
package enum TLSFailure: Sendable, Equatable {
    /// The chain does not lead to a trusted root (unknown CA, self-signed certificate...).
    case untrustedIssuer(String)
    /// A certificate's validity period has ended.
    case expired(String)
    /// A certificate's validity period has not begun.
    case notYetValid(String)
    /// The certificate does not name the host (DNS or IP subject alternative names).
    case hostnameMismatch(String)
    /// The two sides share no acceptable protocol version.
    case protocolVersion(String)
    /// Any other handshake failure.
    case handshake(String)

    /// The non-retryable error that names `host` and the reason.
    func error(host: String) -> BatchError {
        let text: String
        switch self {
        case .untrustedIssuer(let detail):
            text = "untrusted issuer: the certificate chain does not lead to a trusted root (\(detail)); "
                + "trust its CA with --ca-bundle, SSL_CERT_FILE or TLSConfiguration(trustRoots:)"
        case .expired(let detail): text = "certificate expired: it is no longer valid (\(detail))"
        case .notYetValid(let detail): text = "certificate not yet valid: its validity period has not begun (\(detail))"
        case .hostnameMismatch(let detail):
            text = "hostname mismatch: the certificate is not valid for \(Self.bare(host)) (\(detail))"
        case .protocolVersion(let detail):
            text = "handshake failure: protocol version: the server does not offer TLS 1.2 or later (\(detail))"
        case .handshake(let detail): text = "handshake failure: \(detail)"
        }
        return BatchError(.tls, "TLS connection to \(host) failed: \(text)", isRetryable: false)
    }

    /// `host` without its port.
    private static func bare(_ host: String) -> String {
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") { return String(host[host.index(after: host.startIndex)..<end]) }
        if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") { return String(host[..<colon]) }
        return host
    }

    /// The failure an OpenSSL certificate verification result stands for (`X509_V_ERR_*`).
    static func verification(code: Int, text: String) -> TLSFailure {
        switch code {
        case 9: return .notYetValid(text)  // X509_V_ERR_CERT_NOT_YET_VALID
        case 10: return .expired(text)  // X509_V_ERR_CERT_HAS_EXPIRED
        case 62, 64: return .hostnameMismatch(text)  // X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH
        case 2, 18, 19, 20, 21: return .untrustedIssuer(text)  // issuer unknown, self-signed, local issuer...
        default: return .untrustedIssuer(text)
        }
    }

    /// The failure of a handshake that OpenSSL reported as `text` (its error string).
    static func handshakeError(_ text: String) -> TLSFailure {
        let lower = text.lowercased()
        if lower.contains("protocol version") || lower.contains("unsupported protocol") || lower.contains("no protocols available") {
            return .protocolVersion(text)
        }
        if lower.contains("wrong version number") || lower.contains("packet length too long") || lower.contains("record layer failure") {
            return .handshake("\(text): the server did not answer in TLS (is it plain http?)")
        }
        return .handshake(text)
    }

    /// `host:port` as errors name it (the port only when it is not 443).
    static func label(for url: URL) -> String {
        let host = url.host ?? "?"
        let shown = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        if let port = url.port, port != 443 { return "\(shown):\(port)" }
        return shown
    }
}
