#if canImport(Glibc)
import Glibc

/// The system's OpenSSL 3 (`libssl.so.3`, `libcrypto.so.3`), loaded at run time with `dlopen`.
///
/// BatchKit has no build-time dependency on OpenSSL: no headers, no C target, no link flag, so a
/// machine with only the Swift toolchain builds it. On Linux, FoundationNetworking (libcurl)
/// already loads the same libraries, so they are present wherever URLSession does https; when
/// they are not, ``shared`` is `nil` and `https://` goes to URLSession.
///
/// Only the functions BatchKit calls are resolved; every pointer type is opaque. The constants
/// below are the stable ABI values from OpenSSL 3's public headers.
///
/// `@unchecked Sendable`: every stored property is a `let` (C function pointers resolved once in
/// `init` and never changed), and OpenSSL 3's functions are safe to call from any thread on
/// distinct `SSL` objects; nothing mutable is shared.
struct OpenSSLLibrary: @unchecked Sendable {
    // `@unchecked`: every stored property is an immutable C function pointer, resolved once.

    typealias Ptr = OpaquePointer

    // MARK: libssl
    let OPENSSL_init_ssl: @convention(c) (UInt64, Ptr?) -> Int32
    let TLS_client_method: @convention(c) () -> Ptr?
    let TLS_server_method: @convention(c) () -> Ptr?
    let SSL_CTX_new: @convention(c) (Ptr?) -> Ptr?
    let SSL_CTX_free: @convention(c) (Ptr?) -> Void
    let SSL_CTX_ctrl: @convention(c) (Ptr?, Int32, Int, UnsafeMutableRawPointer?) -> Int
    let SSL_CTX_set_options: @convention(c) (Ptr?, UInt64) -> UInt64
    let SSL_CTX_set_verify: @convention(c) (Ptr?, Int32, UnsafeMutableRawPointer?) -> Void
    let SSL_CTX_set_default_verify_paths: @convention(c) (Ptr?) -> Int32
    let SSL_CTX_load_verify_locations: @convention(c) (Ptr?, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Int32
    let SSL_CTX_set_alpn_protos: @convention(c) (Ptr?, UnsafePointer<UInt8>?, UInt32) -> Int32
    let SSL_CTX_use_certificate_chain_file: @convention(c) (Ptr?, UnsafePointer<CChar>?) -> Int32
    let SSL_CTX_use_PrivateKey_file: @convention(c) (Ptr?, UnsafePointer<CChar>?, Int32) -> Int32
    let SSL_CTX_check_private_key: @convention(c) (Ptr?) -> Int32
    let SSL_new: @convention(c) (Ptr?) -> Ptr?
    let SSL_free: @convention(c) (Ptr?) -> Void
    let SSL_set_fd: @convention(c) (Ptr?, Int32) -> Int32
    let SSL_ctrl: @convention(c) (Ptr?, Int32, Int, UnsafeMutableRawPointer?) -> Int
    let SSL_set1_host: @convention(c) (Ptr?, UnsafePointer<CChar>?) -> Int32
    let SSL_get0_param: @convention(c) (Ptr?) -> Ptr?
    let SSL_connect: @convention(c) (Ptr?) -> Int32
    let SSL_accept: @convention(c) (Ptr?) -> Int32
    let SSL_read: @convention(c) (Ptr?, UnsafeMutableRawPointer?, Int32) -> Int32
    let SSL_write: @convention(c) (Ptr?, UnsafeRawPointer?, Int32) -> Int32
    let SSL_get_error: @convention(c) (Ptr?, Int32) -> Int32
    let SSL_shutdown: @convention(c) (Ptr?) -> Int32
    let SSL_get_verify_result: @convention(c) (Ptr?) -> Int
    let SSL_get0_alpn_selected: @convention(c) (Ptr?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt32>?) -> Void

    // MARK: libcrypto
    let X509_verify_cert_error_string: @convention(c) (Int) -> UnsafePointer<CChar>?
    let X509_VERIFY_PARAM_set1_ip_asc: @convention(c) (Ptr?, UnsafePointer<CChar>?) -> Int32
    let ERR_get_error: @convention(c) () -> UInt
    let ERR_error_string_n: @convention(c) (UInt, UnsafeMutablePointer<CChar>?, Int) -> Void
    let ERR_clear_error: @convention(c) () -> Void
    let X509_get_default_cert_file: @convention(c) () -> UnsafePointer<CChar>?
    let X509_get_default_cert_dir: @convention(c) () -> UnsafePointer<CChar>?

    // MARK: Constants (OpenSSL 3 headers)
    static let SSL_ERROR_SSL: Int32 = 1
    static let SSL_ERROR_WANT_READ: Int32 = 2
    static let SSL_ERROR_WANT_WRITE: Int32 = 3
    static let SSL_ERROR_SYSCALL: Int32 = 5
    static let SSL_ERROR_ZERO_RETURN: Int32 = 6
    static let SSL_CTRL_MODE: Int32 = 33
    static let SSL_CTRL_SET_SESS_CACHE_MODE: Int32 = 44
    static let SSL_CTRL_SET_TLSEXT_HOSTNAME: Int32 = 55
    static let SSL_CTRL_SET_MIN_PROTO_VERSION: Int32 = 123
    static let SSL_CTRL_SET_MAX_PROTO_VERSION: Int32 = 124
    static let TLSEXT_NAMETYPE_host_name = 0
    static let SSL_MODE_ENABLE_PARTIAL_WRITE = 0x1
    static let SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2
    static let SSL_MODE_RELEASE_BUFFERS = 0x10
    static let SSL_VERIFY_NONE: Int32 = 0
    static let SSL_VERIFY_PEER: Int32 = 1
    static let SSL_FILETYPE_PEM: Int32 = 1
    static let SSL_OP_IGNORE_UNEXPECTED_EOF: UInt64 = 1 << 7
    static let SSL_OP_NO_COMPRESSION: UInt64 = 1 << 17
    static let SSL_OP_NO_RENEGOTIATION: UInt64 = 1 << 30
    static let TLS1_2_VERSION = 0x0303
    static let TLS1_3_VERSION = 0x0304
    static let X509_V_OK = 0

    /// The library, or `nil` when `libssl.so.3` cannot be loaded (or lacks a function).
    static let shared: OpenSSLLibrary? = load()

    /// Library file names tried in order. `BATCHKIT_LIBSSL=none` disables the lean TLS path
    /// (everything `https://` then goes to URLSession); any other value names the libssl to try
    /// first (its libcrypto must be loadable by the usual names).
    private static func load() -> OpenSSLLibrary? {
        var sslNames = ["libssl.so.3"]
        var cryptoNames = ["libcrypto.so.3"]
        if let override = getenv("BATCHKIT_LIBSSL").map({ String(cString: $0) }) {
            if override == "none" { return nil }
            sslNames.insert(override, at: 0)
            cryptoNames.insert(override.replacingOccurrences(of: "libssl", with: "libcrypto"), at: 0)
        }
        guard let crypto = cryptoNames.lazy.compactMap({ dlopen($0, RTLD_NOW | RTLD_GLOBAL) }).first,
            let ssl = sslNames.lazy.compactMap({ dlopen($0, RTLD_NOW | RTLD_GLOBAL) }).first
        else { return nil }
        struct Missing: Error {}
        func sym<T>(_ handle: UnsafeMutableRawPointer, _ name: String) throws -> T {
            guard let address = dlsym(handle, name) else { throw Missing() }
            return unsafeBitCast(address, to: T.self)
        }
        guard let library = try? OpenSSLLibrary(
            OPENSSL_init_ssl: sym(ssl, "OPENSSL_init_ssl"),
            TLS_client_method: sym(ssl, "TLS_client_method"),
            TLS_server_method: sym(ssl, "TLS_server_method"),
            SSL_CTX_new: sym(ssl, "SSL_CTX_new"),
            SSL_CTX_free: sym(ssl, "SSL_CTX_free"),
            SSL_CTX_ctrl: sym(ssl, "SSL_CTX_ctrl"),
            SSL_CTX_set_options: sym(ssl, "SSL_CTX_set_options"),
            SSL_CTX_set_verify: sym(ssl, "SSL_CTX_set_verify"),
            SSL_CTX_set_default_verify_paths: sym(ssl, "SSL_CTX_set_default_verify_paths"),
            SSL_CTX_load_verify_locations: sym(ssl, "SSL_CTX_load_verify_locations"),
            SSL_CTX_set_alpn_protos: sym(ssl, "SSL_CTX_set_alpn_protos"),
            SSL_CTX_use_certificate_chain_file: sym(ssl, "SSL_CTX_use_certificate_chain_file"),
            SSL_CTX_use_PrivateKey_file: sym(ssl, "SSL_CTX_use_PrivateKey_file"),
            SSL_CTX_check_private_key: sym(ssl, "SSL_CTX_check_private_key"),
            SSL_new: sym(ssl, "SSL_new"),
            SSL_free: sym(ssl, "SSL_free"),
            SSL_set_fd: sym(ssl, "SSL_set_fd"),
            SSL_ctrl: sym(ssl, "SSL_ctrl"),
            SSL_set1_host: sym(ssl, "SSL_set1_host"),
            SSL_get0_param: sym(ssl, "SSL_get0_param"),
            SSL_connect: sym(ssl, "SSL_connect"),
            SSL_accept: sym(ssl, "SSL_accept"),
            SSL_read: sym(ssl, "SSL_read"),
            SSL_write: sym(ssl, "SSL_write"),
            SSL_get_error: sym(ssl, "SSL_get_error"),
            SSL_shutdown: sym(ssl, "SSL_shutdown"),
            SSL_get_verify_result: sym(ssl, "SSL_get_verify_result"),
            SSL_get0_alpn_selected: sym(ssl, "SSL_get0_alpn_selected"),
            X509_verify_cert_error_string: sym(crypto, "X509_verify_cert_error_string"),
            X509_VERIFY_PARAM_set1_ip_asc: sym(crypto, "X509_VERIFY_PARAM_set1_ip_asc"),
            ERR_get_error: sym(crypto, "ERR_get_error"),
            ERR_error_string_n: sym(crypto, "ERR_error_string_n"),
            ERR_clear_error: sym(crypto, "ERR_clear_error"),
            X509_get_default_cert_file: sym(crypto, "X509_get_default_cert_file"),
            X509_get_default_cert_dir: sym(crypto, "X509_get_default_cert_dir")),
            library.OPENSSL_init_ssl(0, nil) == 1
        else { return nil }
        return library
    }

    /// The text of the oldest queued OpenSSL error (`nil` when none), clearing the queue.
    func drainErrors() -> String? {
        var first: String?
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            if first == nil {
                var buffer = [CChar](repeating: 0, count: 256)
                ERR_error_string_n(code, &buffer, buffer.count)
                first = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return first
    }

    /// The readable text of a certificate verification result.
    func verifyErrorText(_ code: Int) -> String {
        X509_verify_cert_error_string(code).map { String(cString: $0) } ?? "verification error \(code)"
    }
}
#endif
