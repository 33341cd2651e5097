#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Keeps a write to a socket whose peer has gone from killing the process.
///
/// Plain sockets are written with `send(…, MSG_NOSIGNAL)`, but OpenSSL writes its socket with
/// `write(2)` (in `SSL_write`, the handshake, `SSL_read` answering a key update, and the
/// close_notify of `SSL_shutdown`), and `write(2)` on a socket the peer has reset raises `SIGPIPE`,
/// whose default action ends the whole process. `SIGPIPE` raised by a write is sent to the thread
/// that wrote, so blocking it on the threads that run TLS sessions turns the signal into the
/// `EPIPE` error the caller already handles; the process-wide disposition is left alone, so a host
/// application's own `SIGPIPE` handling is untouched.
package enum BrokenPipe {
    /// Blocks `SIGPIPE` on the calling thread for the rest of its life. Call it first thing on a
    /// thread the library owns (the transport's event loop, an emulator connection thread).
    package static func blockOnThisThread() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        _ = pthread_sigmask(SIG_BLOCK, &set, nil)
    }
}
