import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension TLSFailure {
    /// The readable, non-retryable error for a URLSession failure on an `https://` request that
    /// was a TLS failure; `nil` for any other failure.
    ///
    /// Apple platforms report TLS failures with their own `NSURLError` codes. FoundationNetworking
    /// (libcurl) on Linux mostly reports them as `NSURLErrorUnknown` (-1) or
    /// `NSURLErrorSecureConnectionFailed`, with libcurl's text ("SSL certificate problem:
    /// certificate has expired") as the description: the text says which failure it was.
    static func fromURLSession(_ error: any Error, url: URL?) -> BatchError? {
        guard let url, url.scheme?.lowercased() == "https" else { return nil }
        let ns = error as NSError
        guard ns.domain == NSURLErrorDomain else { return nil }
        let texts = [ns.localizedDescription, ns.userInfo[NSLocalizedDescriptionKey] as? String,
                     (ns.userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription]
            .compactMap { $0 }
            .filter { !$0.contains("://") }  // never a URL (its query may hold a key)
        let detail = texts.first { Self.classify(text: $0) != nil }
        let failure: TLSFailure?
        switch URLError.Code(rawValue: ns.code) {
        case .serverCertificateUntrusted, .serverCertificateHasUnknownRoot:
            failure = detail.flatMap { Self.classify(text: $0) } ?? .untrustedIssuer("the server's certificate is not trusted")
        case .serverCertificateHasBadDate:
            failure = detail.flatMap { Self.classify(text: $0) } ?? .expired("the certificate's dates are not valid now")
        case .serverCertificateNotYetValid:
            failure = .notYetValid("the certificate's validity period has not begun")
        case .secureConnectionFailed, .clientCertificateRejected, .clientCertificateRequired:
            failure = detail.flatMap { Self.classify(text: $0) } ?? .handshake(texts.first ?? "the secure connection failed")
        default:
            failure = detail.flatMap { Self.classify(text: $0) }
        }
        return failure?.error(host: label(for: url))
    }

    /// The failure an error text (libcurl's or OpenSSL's words) describes, if it is one.
    static func classify(text: String) -> TLSFailure? {
        let lower = text.lowercased()
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if lower.contains("certificate has expired") || lower.contains("certificate expired") { return .expired(trimmed) }
        if lower.contains("not yet valid") { return .notYetValid(trimmed) }
        if lower.contains("subject name") || lower.contains("does not match target host") || lower.contains("hostname mismatch")
            || lower.contains("ip address mismatch")
        {
            return .hostnameMismatch(trimmed)
        }
        if lower.contains("issuer certificate") || lower.contains("self-signed") || lower.contains("self signed")
            || lower.contains("unknown ca") || lower.contains("certificate verify failed") || lower.contains("ssl certificate problem")
            || lower.contains("peer certificate cannot be authenticated")
        {
            return .untrustedIssuer(trimmed)
        }
        if lower.contains("ssl") || lower.contains("tls") || lower.contains("handshake") {
            return handshakeError(trimmed)
        }
        return nil
    }
}
