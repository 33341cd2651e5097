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
