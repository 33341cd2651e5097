#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import BatchKit
import Foundation
import Synchronization

/// The machinery both loopback servers (``EmulatorServer`` and ``TLSEmulatorServer``) share: the
/// listening socket, the pipe that wakes the accept thread at shutdown, the accept loop, and the
/// count of server threads that shutdown drains.
///
/// Shutdown is two steps so that a server can stop its connections under its own lock:
/// ``beginClosing()`` (first call: `true`) inside the lock that admits connections, then ``wake()``
/// and ``drained()`` outside it.
final class ServerThreads: Sendable {
    /// The bound TCP port.
    let port: Int
    private let listenFD: Int32
    /// A pipe whose write end wakes the accept thread at shutdown.
    private let wakeFDs: (read: Int32, write: Int32)
    /// Set once at shutdown; read per request without a lock.
    let closing = Atomic<Bool>(false)
    private let threads = Mutex(Threads())

    private struct Threads {
        var live = 0
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Listens on `host:port` (port 0: ephemeral), non-blocking, with a wake pipe.
    init(host: String, port: Int) throws {
        let (fd, boundPort) = try Socket.listen(host: host, port: port)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            let error = EmulatorServerError.posix("pipe")
            _ = close(fd)
            throw error
        }
        self.port = boundPort
        self.listenFD = fd
        self.wakeFDs = (pipeFDs[0], pipeFDs[1])
    }

    /// Whether shutdown has begun.
    var isClosing: Bool { closing.load(ordering: .sequentiallyConsistent) }

    /// Marks the server closing; `true` for the first call only.
    func beginClosing() -> Bool { !closing.exchange(true, ordering: .sequentiallyConsistent) }

    /// Wakes the accept loop, which then closes the listener and the pipe (call once, after the
    /// first ``beginClosing()``).
    func wake() {
        var byte: UInt8 = 1
        _ = write(wakeFDs.write, &byte, 1)
    }

    /// Returns when every thread started with ``spawn(name:_:)`` has ended.
    func drained() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = threads.withLock { t -> Bool in
                if t.live == 0 { return true }
                t.drainWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Runs `body` on a new server thread (SIGPIPE blocked, 512 KiB stack) that shutdown waits for.
    func spawn(name: String, _ body: @escaping @Sendable () -> Void) {
        threads.withLock { $0.live += 1 }
        let thread = Thread { [self] in
            BrokenPipe.blockOnThisThread()
            body()
            let waiters = threads.withLock { t -> [CheckedContinuation<Void, Never>] in
                t.live -= 1
                guard t.live == 0, isClosing else { return [] }
                defer { t.drainWaiters = [] }
                return t.drainWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
        thread.name = name
        thread.stackSize = 512 * 1024
        thread.start()
    }

    /// The accept thread's loop, until shutdown: accepts every pending connection, sets it
    /// non-blocking or blocking and `TCP_NODELAY`, and hands it to `admit`, which starts serving it
    /// and returns `true`, or returns `false` when the server is closing (the connection is then
    /// closed and the loop ends). Closes the listener and the wake pipe when it ends.
    func acceptLoop(nonBlocking: Bool, admit: (Int32) -> Bool) {
        defer {
            _ = close(listenFD)
            _ = close(wakeFDs.read)
            _ = close(wakeFDs.write)
        }
        var fds = [
            pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeFDs.read, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            fds[0].revents = 0
            fds[1].revents = 0
            if poll(&fds, 2, -1) < 0 {
                // Only the wake pipe ends this loop: shutdown writes to it exactly once and this
                // thread closes it, so it must not be closed before shutdown has written.
                if errno != EINTR { usleep(1000) }
                continue
            }
            if fds[1].revents != 0 || isClosing { return }
            // Accept everything pending (a burst of hundreds of clients arrives at once).
            while true {
                let fd = accept(listenFD, nil, nil)
                if fd < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    if errno == EMFILE || errno == ENFILE { usleep(10_000) }
                    break
                }
                // Accepted sockets inherit O_NONBLOCK on some systems: set the mode explicitly.
                let flags = fcntl(fd, F_GETFL)
                _ = fcntl(fd, F_SETFL, nonBlocking ? flags | O_NONBLOCK : flags & ~O_NONBLOCK)
                Socket.setNoDelay(fd)
                guard admit(fd) else {
                    _ = close(fd)
                    return
                }
            }
        }
    }
}
