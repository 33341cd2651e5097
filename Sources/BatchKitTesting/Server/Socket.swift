#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Why the loopback server could not start or a socket call failed. Carries the failing call and
/// `errno`'s text; never request data.
public struct EmulatorServerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What failed, in one line (`bind 127.0.0.1:8080: Address already in use`).
    public var message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { "EmulatorServer: \(message)" }

    static func posix(_ call: String) -> EmulatorServerError {
        EmulatorServerError("\(call): \(String(cString: strerror(errno)))")
    }
}

#if canImport(Glibc)
private func posixListen(_ fd: Int32, _ backlog: Int32) -> Int32 { Glibc.listen(fd, backlog) }
private func posixConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    Glibc.connect(fd, address, length)
}
#elseif canImport(Musl)
private func posixListen(_ fd: Int32, _ backlog: Int32) -> Int32 { Musl.listen(fd, backlog) }
private func posixConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    Musl.connect(fd, address, length)
}
#elseif canImport(Darwin)
private func posixListen(_ fd: Int32, _ backlog: Int32) -> Int32 { Darwin.listen(fd, backlog) }
private func posixConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    Darwin.connect(fd, address, length)
}
#endif

/// Thin wrappers over the POSIX socket calls the server uses. Every function works on a raw file
/// descriptor; ownership (who closes it) is the caller's business.
enum Socket {
    #if canImport(Darwin)
    static let streamType = SOCK_STREAM
    static let noSignal: Int32 = 0
    #else
    static let streamType = Int32(SOCK_STREAM.rawValue)
    static let noSignal = Int32(MSG_NOSIGNAL)
    #endif

    /// A listening IPv4 TCP socket bound to `host:port` (port 0: ephemeral). Returns the
    /// descriptor and the bound port.
    static func listen(host: String, port: Int, backlog: Int32 = 1024) throws -> (fd: Int32, port: Int) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
        let literal = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, literal, &address.sin_addr) == 1 else {
            throw EmulatorServerError("not an IPv4 address: \(host)")
        }
        let fd = socket(AF_INET, streamType, 0)
        guard fd >= 0 else { throw EmulatorServerError.posix("socket") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        #if canImport(Darwin)
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let error = EmulatorServerError.posix("bind \(host):\(port)")
            _ = close(fd)
            throw error
        }
        guard posixListen(fd, backlog) == 0 else {
            let error = EmulatorServerError.posix("listen")
            _ = close(fd)
            throw error
        }
        var bound4 = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound4) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: bound4.sin_port)))
    }

    /// Connects a blocking IPv4 TCP socket to `host:port`. For tests and tools.
    static func connect(host: String, port: Int) throws -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else {
            throw EmulatorServerError("not an IPv4 address: \(host)")
        }
        let fd = socket(AF_INET, streamType, 0)
        guard fd >= 0 else { throw EmulatorServerError.posix("socket") }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { posixConnect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = EmulatorServerError.posix("connect \(host):\(port)")
            _ = close(fd)
            throw error
        }
        setNoDelay(fd)
        return fd
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        #if canImport(Darwin)
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    /// Bounds blocking receives on `fd` (tests use it so nothing waits forever).
    static func setReceiveTimeout(_ fd: Int32, seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sets `SO_LINGER` to zero so `close` sends a TCP RST instead of a FIN.
    static func setAbortiveClose(_ fd: Int32) {
        var linger = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
    }

    /// Receives up to `count` bytes; `0` at end of stream, `-1` on error (EINTR retried).
    static func receive(_ fd: Int32, into pointer: UnsafeMutableRawPointer, count: Int) -> Int {
        while true {
            let n = recv(fd, pointer, count, 0)
            if n < 0 && errno == EINTR { continue }
            return n
        }
    }

    /// Sends all of `buffer`; `false` when the peer is gone.
    @discardableResult
    static func sendAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
        guard var pointer = buffer.baseAddress else { return true }
        var remaining = buffer.count
        while remaining > 0 {
            let n = send(fd, pointer, remaining, noSignal)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            pointer += n
            remaining -= n
        }
        return true
    }

    @discardableResult
    static func sendAll(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { sendAll(fd, $0) }
    }

    @discardableResult
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { sendAll(fd, $0) }
    }

    /// Wakes any thread blocked on `fd` (receive returns 0 or fails) without releasing the descriptor.
    static func shutdownBoth(_ fd: Int32) {
        _ = shutdown(fd, Int32(SHUT_RDWR))
    }
}
