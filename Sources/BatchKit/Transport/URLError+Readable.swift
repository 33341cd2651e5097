import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension URLError.Code {
    /// What the failure was, in words, for error messages ("cannot connect to the host"), with
    /// the numeric code for anything unusual. Never just a number.
    var readableDescription: String {
        switch self {
        case .timedOut: return "timed out"
        case .cannotFindHost, .dnsLookupFailed: return "cannot find the host (name resolution failed)"
        case .cannotConnectToHost: return "cannot connect to the host (connection refused or unreachable)"
        case .networkConnectionLost: return "the connection was lost before a whole answer arrived"
        case .notConnectedToInternet: return "not connected to the network"
        case .badServerResponse, .cannotParseResponse: return "the server's answer was not valid HTTP"
        case .httpTooManyRedirects: return "too many redirects"
        case .badURL, .unsupportedURL: return "the URL is not valid"
        case .secureConnectionFailed: return "the TLS connection failed"
        case .serverCertificateUntrusted, .serverCertificateHasUnknownRoot: return "the server's certificate is not trusted"
        case .serverCertificateHasBadDate: return "the server's certificate has expired"
        case .serverCertificateNotYetValid: return "the server's certificate is not yet valid"
        case .cancelled: return "cancelled"
        case .fileDoesNotExist: return "the file to upload does not exist"
        case .cannotMoveFile: return "the download could not be saved"
        case .unknown: return "the connection failed for an unknown reason (URLError -1)"
        default: return "the connection failed (URLError \(rawValue))"
        }
    }
}

extension URLError {
    /// The user-info key of the host (and port, when not the default) a transport failed to
    /// reach. Only the host: a path or query may carry a key.
    static let hostKey = "BatchKitHost"
    /// The user-info key of what the transport itself saw, in words ("connection refused").
    static let detailKey = "BatchKitDetail"

    /// A `URLError` of `code` for a request to `url` whose description says what happened and
    /// names the host (host and port only, never the path or query, which may carry a key).
    static func naming(_ code: Code, url: URL?, detail: String? = nil) -> URLError {
        let host = url.flatMap { $0.host == nil ? nil : TLSFailure.label(for: $0) }
        var info: [String: Any] = [:]
        if let host { info[hostKey] = host }
        if let detail { info[detailKey] = detail }
        info[NSLocalizedDescriptionKey] = message(code, host: host, detail: detail)
        return URLError(code, userInfo: info)
    }

    /// This error naming the host of `url`, unless it names one already.
    func naming(_ url: URL?) -> URLError {
        userInfo[Self.hostKey] != nil ? self : Self.naming(code, url: url, detail: userInfo[Self.detailKey] as? String)
    }

    /// What happened, in words, naming the host when the error knows it:
    /// "connection refused by 127.0.0.1:1 (nothing listens on that port)". Never a bare code.
    var readableMessage: String {
        Self.message(code, host: userInfo[Self.hostKey] as? String, detail: userInfo[Self.detailKey] as? String)
    }

    static func message(_ code: Code, host: String?, detail: String?) -> String {
        guard let host else { return detail.map { "\(code.readableDescription): \($0)" } ?? code.readableDescription }
        switch code {
        case .cannotConnectToHost:
            switch detail {
            case "connection refused"?: return "connection refused by \(host) (nothing listens on that port, or a firewall refuses)"
            case let detail?: return "cannot connect to \(host): \(detail)"
            case nil: return "cannot connect to \(host) (connection refused or host unreachable)"
            }
        case .cannotFindHost, .dnsLookupFailed:
            return "DNS lookup failed: the host name \(host) does not resolve" + (detail.map { " (\($0))" } ?? "")
        case .timedOut: return "timed out waiting for \(host)"
        case .networkConnectionLost: return "the connection to \(host) was lost before a whole answer arrived"
        case .notConnectedToInternet: return "not connected to the network (could not reach \(host))"
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasUnknownRoot,
            .serverCertificateHasBadDate, .serverCertificateNotYetValid:
            return "TLS connection to \(host) failed: \(code.readableDescription)"
        default:
            return "\(host): \(code.readableDescription)" + (detail.map { " (\($0))" } ?? "")
        }
    }
}
