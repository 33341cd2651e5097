import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The write end of the self-pipe the signal handler writes to. Set once by
/// ``SignalPipe/install(_:)`` before any handler is installed, then only read — by the handler,
/// which may run on any thread; that ordering is what makes the unsynchronised access safe.
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// Delivers signals as an `AsyncStream`, reliably.
///
/// Why not a `DispatchSource` signal source: on Linux it sets the signal to `SIG_IGN` and relies on
/// the signal being delivered where libdispatch watches for it; a signal the kernel hands to
/// another thread is then discarded, which lost an occasional SIGTERM. A real handler runs on
/// whichever thread gets the signal and only writes the signal number to a pipe (`write` is
/// async-signal-safe); a thread reads the pipe and yields to the stream. Install it once per
/// process, before the work starts.
enum SignalPipe {
    static func install(_ numbers: [Int32]) -> AsyncStream<Int32> {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return AsyncStream { $0.finish() } }
        signalPipeWriteEnd = fds[1]
        let readEnd = fds[0]
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let reader = Thread {
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n == 1 { continuation.yield(Int32(byte)) } else if n < 0 && errno == EINTR { continue } else { break }
            }
            continuation.finish()
        }
        reader.start()
        for number in numbers {
            _ = signal(number) { received in
                var byte = UInt8(truncatingIfNeeded: received)
                _ = write(signalPipeWriteEnd, &byte, 1)
            }
        }
        return stream
    }

    /// `SIGINT`, `SIGTERM`, or `signal N`.
    static func name(_ number: Int32) -> String {
        switch number {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        default: return "signal \(number)"
        }
    }
}

/// How `batchkit run` stops on a signal, in two steps (as a service group does: the first signal
/// is a graceful shutdown, the second a cancellation):
///
/// 1. The first SIGINT or SIGTERM runs the registered stop actions once (the run cancels its work:
///    no new requests, requests in flight cancelled, native jobs left running) and is remembered,
///    so the command can finish writing, say how to resume and exit 128 + the signal (130, 143).
/// 2. A second signal ends the process at once with 128 + that signal: what is journaled is
///    journaled (each line is flushed as it is written; a line cut here is repaired by the rerun).
final class Interruption: Sendable {
    private struct State {
        var signal: Int32?
        var actions: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())

    private init() {}

    /// Routes SIGINT and SIGTERM to a new interruption. Call once, before the work starts.
    static func install() -> Interruption {
        let interruption = Interruption()
        let signals = SignalPipe.install([SIGINT, SIGTERM])
        Task.detached {
            var iterator = signals.makeAsyncIterator()
            guard let first = await iterator.next() else { return }
            interruption.interrupt(first)
            guard let second = await iterator.next() else { return }
            printError("batchkit: \(SignalPipe.name(second)) received again; exiting at once")
            _exit(128 + second)
        }
        return interruption
    }

    /// The first signal received, if any.
    var signal: Int32? { state.withLock { $0.signal } }

    /// Runs `action` at the first signal (at once if it has already come).
    func onInterrupt(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { s -> Bool in
            if s.signal != nil { return true }
            s.actions.append(action)
            return false
        }
        if now { action() }
    }

    func interrupt(_ signal: Int32) {
        let actions = state.withLock { s -> [@Sendable () -> Void]? in
            guard s.signal == nil else { return nil }
            s.signal = signal
            defer { s.actions = [] }
            return s.actions
        }
        guard let actions else { return }
        printError("batchkit: \(SignalPipe.name(signal)) received; stopping (finishing the output; a second signal exits at once)")
        for action in actions { action() }
    }
}
