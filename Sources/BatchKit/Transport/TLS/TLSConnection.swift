#if canImport(Glibc)
import Glibc
import Foundation

/// One configured OpenSSL context (`SSL_CTX`): trust roots, minimum version, ALPN, verification.
///
/// `@unchecked Sendable`: the context is configured completely in `init` and never changed
/// afterwards; OpenSSL makes `SSL_new` on a shared, unchanging `SSL_CTX` safe from any thread.
package final class TLSContext: @unchecked Sendable {
    let library: OpenSSLLibrary
    let context: OpaquePointer
    let isServer: Bool

    /// A client context verifying servers as `configuration` says. Throws a ``BatchError/Code/tls``
    /// error naming the file when a trust root cannot be loaded.
    init(client configuration: TLSConfiguration, library: OpenSSLLibrary) throws {
        self.library = library
        isServer = false
        guard let method = library.TLS_client_method(), let context = library.SSL_CTX_new(method) else {
            throw BatchError(.tls, "TLS: OpenSSL could not create a client context", isRetryable: false)
        }
        // From here on a throw runs `deinit`, which frees the context.
        self.context = context
        library.ERR_clear_error()
        let minimum = configuration.minimumVersion == .tls13 ? OpenSSLLibrary.TLS1_3_VERSION : OpenSSLLibrary.TLS1_2_VERSION
        _ = library.SSL_CTX_ctrl(context, OpenSSLLibrary.SSL_CTRL_SET_MIN_PROTO_VERSION, minimum, nil)
        _ = library.SSL_CTX_ctrl(
            context, OpenSSLLibrary.SSL_CTRL_MODE,
            OpenSSLLibrary.SSL_MODE_ENABLE_PARTIAL_WRITE | OpenSSLLibrary.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, nil)
        _ = library.SSL_CTX_set_options(context, OpenSSLLibrary.SSL_OP_IGNORE_UNEXPECTED_EOF | OpenSSLLibrary.SSL_OP_NO_COMPRESSION)
        // ALPN: http/1.1 only (length-prefixed list).
        let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
        _ = library.SSL_CTX_set_alpn_protos(context, alpn, UInt32(alpn.count))
        library.SSL_CTX_set_verify(context, OpenSSLLibrary.SSL_VERIFY_PEER, nil)
        if configuration.usesSystemTrustRoots {
            // The system store, which SSL_CERT_FILE and SSL_CERT_DIR replace in OpenSSL; load
            // the built-in locations too, so the variables add to the store rather than replace it.
            _ = library.SSL_CTX_set_default_verify_paths(context)
            if getenv("SSL_CERT_FILE") != nil || getenv("SSL_CERT_DIR") != nil {
                _ = library.SSL_CTX_load_verify_locations(
                    context, library.X509_get_default_cert_file(), library.X509_get_default_cert_dir())
            }
            library.ERR_clear_error()
        }
        for root in configuration.trustRoots {
            let loaded: Int32 =
                root.kind == .file
                ? library.SSL_CTX_load_verify_locations(context, root.path, nil)
                : library.SSL_CTX_load_verify_locations(context, nil, root.path)
            if loaded != 1 {
                let reason = library.drainErrors() ?? "unreadable"
                throw BatchError(
                    .tls, "TLS: cannot load trust roots from \(root.path): \(reason)", field: "trustRoots", isRetryable: false)
            }
        }
    }

    /// A server context presenting the certificate chain and key in the PEM files. Throws naming
    /// the file that could not be used.
    init(serverCertificateChain certificate: String, privateKey key: String, library: OpenSSLLibrary) throws {
        self.library = library
        isServer = true
        guard let method = library.TLS_server_method(), let context = library.SSL_CTX_new(method) else {
            throw BatchError(.tls, "TLS: OpenSSL could not create a server context", isRetryable: false)
        }
        self.context = context
        library.ERR_clear_error()
        _ = library.SSL_CTX_ctrl(context, OpenSSLLibrary.SSL_CTRL_SET_MIN_PROTO_VERSION, OpenSSLLibrary.TLS1_2_VERSION, nil)
        _ = library.SSL_CTX_ctrl(
            context, OpenSSLLibrary.SSL_CTRL_MODE,
            OpenSSLLibrary.SSL_MODE_ENABLE_PARTIAL_WRITE | OpenSSLLibrary.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, nil)
        _ = library.SSL_CTX_set_options(context, OpenSSLLibrary.SSL_OP_IGNORE_UNEXPECTED_EOF | OpenSSLLibrary.SSL_OP_NO_COMPRESSION)
        if library.SSL_CTX_use_certificate_chain_file(context, certificate) != 1 {
            let reason = library.drainErrors() ?? "unreadable"
            throw BatchError(.tls, "TLS: cannot use the certificate \(certificate): \(reason)", field: "tls-cert", isRetryable: false)
        }
        if library.SSL_CTX_use_PrivateKey_file(context, key, OpenSSLLibrary.SSL_FILETYPE_PEM) != 1
            || library.SSL_CTX_check_private_key(context) != 1
        {
            let reason = library.drainErrors() ?? "unreadable"
            throw BatchError(.tls, "TLS: cannot use the private key \(key): \(reason)", field: "tls-key", isRetryable: false)
        }
    }

    /// A server context from PEM files, with the system's OpenSSL; throws when it cannot be
    /// loaded or a file cannot be used.
    package static func server(certificateChainFile: String, privateKeyFile: String, maximumVersionTLS12: Bool = false) throws
        -> TLSContext
    {
        guard let library = OpenSSLLibrary.shared else {
            throw BatchError(.tls, "TLS: the system's OpenSSL (libssl.so.3) could not be loaded", isRetryable: false)
        }
        let context = try TLSContext(serverCertificateChain: certificateChainFile, privateKey: privateKeyFile, library: library)
        if maximumVersionTLS12 {
            _ = library.SSL_CTX_ctrl(context.context, OpenSSLLibrary.SSL_CTRL_SET_MAX_PROTO_VERSION, OpenSSLLibrary.TLS1_2_VERSION, nil)
        }
        return context
    }

    deinit { library.SSL_CTX_free(context) }
}

/// One TLS session over a non-blocking socket the caller owns. Not thread-safe: used by one
/// thread at a time (the event loop's, or one server connection's).
package final class TLSSession {
    /// What an operation did.
    package enum Progress: Equatable {
        /// The handshake finished.
        case done
        /// This many bytes were read or written.
        case bytes(Int)
        /// Call again when the socket is readable.
        case wantRead
        /// Call again when the socket is writable.
        case wantWrite
        /// The peer closed the session (or the connection, at a record boundary).
        case closed
        /// The session failed; for a handshake, `failure` says why.
        case failed(TLSFailure?)
    }

    let context: TLSContext
    private let ssl: OpaquePointer
    private var library: OpenSSLLibrary { context.library }

    /// A session on `fd`. A client session sends `serverName` as SNI (host names only) and
    /// checks the certificate against it (DNS name or IP address).
    package init?(context: TLSContext, fd: Int32, serverName: String?) {
        let library = context.library
        guard let ssl = library.SSL_new(context.context) else { return nil }
        self.context = context
        self.ssl = ssl
        guard library.SSL_set_fd(ssl, fd) == 1 else { return nil }
        guard !context.isServer, var name = serverName else { return }
        if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if Self.isIPAddress(name) {
            guard let param = library.SSL_get0_param(ssl), library.X509_VERIFY_PARAM_set1_ip_asc(param, name) == 1 else {
                return nil
            }
        } else {
            _ = name.withCString { library.SSL_ctrl(ssl, OpenSSLLibrary.SSL_CTRL_SET_TLSEXT_HOSTNAME, 0, UnsafeMutableRawPointer(mutating: $0)) }
            guard library.SSL_set1_host(ssl, name) == 1 else { return nil }
        }
    }

    deinit { library.SSL_free(ssl) }

    /// Advances the handshake.
    package func handshake() -> Progress {
        library.ERR_clear_error()
        let result = context.isServer ? library.SSL_accept(ssl) : library.SSL_connect(ssl)
        if result == 1 { return .done }
        switch library.SSL_get_error(ssl, result) {
        case OpenSSLLibrary.SSL_ERROR_WANT_READ: return .wantRead
        case OpenSSLLibrary.SSL_ERROR_WANT_WRITE: return .wantWrite
        default:
            let verify = library.SSL_get_verify_result(ssl)
            if verify != OpenSSLLibrary.X509_V_OK {
                library.ERR_clear_error()
                return .failed(TLSFailure.verification(code: verify, text: library.verifyErrorText(verify)))
            }
            let reason = library.drainErrors()
            return .failed(TLSFailure.handshakeError(reason.map(Self.tidy) ?? "the connection closed during the handshake"))
        }
    }

    /// Writes up to `count` bytes.
    package func write(_ pointer: UnsafeRawPointer, count: Int) -> Progress {
        library.ERR_clear_error()
        let result = library.SSL_write(ssl, pointer, Int32(clamping: count))
        if result > 0 { return .bytes(Int(result)) }
        return status(result)
    }

    /// Reads up to `count` bytes.
    package func read(into pointer: UnsafeMutableRawPointer, count: Int) -> Progress {
        library.ERR_clear_error()
        let result = library.SSL_read(ssl, pointer, Int32(clamping: count))
        if result > 0 { return .bytes(Int(result)) }
        return status(result)
    }

    private func status(_ result: Int32) -> Progress {
        switch library.SSL_get_error(ssl, result) {
        case OpenSSLLibrary.SSL_ERROR_WANT_READ: return .wantRead
        case OpenSSLLibrary.SSL_ERROR_WANT_WRITE: return .wantWrite
        case OpenSSLLibrary.SSL_ERROR_ZERO_RETURN: return .closed
        default:
            library.ERR_clear_error()
            return .failed(nil)
        }
    }

    /// Sends close_notify (best effort, never waits).
    package func shutdown() {
        library.ERR_clear_error()
        _ = library.SSL_shutdown(ssl)
        library.ERR_clear_error()
    }

    /// The ALPN protocol the server chose, if any.
    package var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        library.SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// `error:0A00010B:SSL routines::wrong version number` → `wrong version number (0A00010B)`.
    private static func tidy(_ text: String) -> String {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 5, parts[0] == "error" else { return text }
        return "\(parts[4...].joined(separator: ":")) (\(parts[2]))"
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
#endif
