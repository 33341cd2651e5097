import BatchKit
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The write end of the self-pipe the `SIGWINCH` handler writes to. Set once, before the handler
/// is installed (inside ``TerminalDisplay/watchResizes``, a lazily run `static let`), then only
/// read — by the handler, on whichever thread gets the signal; that ordering is what makes the
/// unsynchronised access safe (as for ``SignalPipe``).
nonisolated(unsafe) private var resizePipeWriteEnd: Int32 = -1

/// The one status line of a run on a terminal, and every other message of the run written
/// above it.
///
/// When stderr is a terminal, ``draw(_:)`` lays the progress out for the terminal's width
/// (``ProgressLine``: never more than `columns - 1` columns, so the line never wraps) and redraws
/// it in place: `"\r" + line + ESC[K` (clear to the end of the line). ``message(_:)`` — which
/// `printError` calls for every message — clears the line, writes the message and a newline, and
/// draws the line again below it, so warnings and notices printed during a run stack up above
/// the progress line instead of breaking it. The width is read with `TIOCGWINSZ` and read again
/// on `SIGWINCH` (a handler that writes to a self-pipe; a thread reads it and redraws).
///
/// When stderr is not a terminal nothing is drawn and a message is written as it is.
///
/// One per process (``shared``): all writes to stderr go through its lock, so a message from
/// another thread (a signal notice) never lands in the middle of a redraw.
final class TerminalDisplay: Sendable {
    private struct State {
        /// The terminal's width in columns.
        var columns: Int
        /// The progress on screen now, when a status line is shown.
        var shown: BatchProgress?
    }

    /// Whether stderr is a terminal (checked once, at start).
    let isTerminal: Bool
    private let state: Mutex<State>
    private let fd: Int32

    /// The display of this process's stderr.
    static let shared = TerminalDisplay(fd: STDERR_FILENO)

    private init(fd: Int32) {
        self.fd = fd
        self.isTerminal = isatty(fd) == 1
        self.state = Mutex(State(columns: Self.columns(of: fd) ?? 80))
    }

    /// The width of the terminal open on `fd` (`TIOCGWINSZ`), or `nil` when it is not a terminal
    /// or does not know its size.
    static func columns(of fd: Int32) -> Int? {
        var size = winsize()
        #if canImport(Glibc)
        let request = UInt(TIOCGWINSZ)
        #else
        let request = TIOCGWINSZ
        #endif
        guard ioctl(fd, request, &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    /// The terminal's width, as last read.
    var columns: Int { state.withLock { $0.columns } }

    /// Draws `progress` as the status line, in place of the one shown (terminal only).
    func draw(_ progress: BatchProgress) {
        guard isTerminal else { return }
        _ = Self.watchResizes
        state.withLock { s in
            s.shown = progress
            emit(Self.statusLine(progress, columns: s.columns))
        }
    }

    /// Writes `line` and a newline to stderr, above the status line when one is shown.
    func message(_ line: String) {
        state.withLock { s in
            guard let shown = s.shown else {
                emit(line + "\n")
                return
            }
            emit("\r\u{1B}[K" + line + "\n" + Self.statusLine(shown, columns: s.columns))
        }
    }

    /// Runs `body` (which writes to stdout) with the status line cleared, then draws it again:
    /// stdout and stderr are often the same terminal.
    func aside(_ body: () -> Void) {
        state.withLock { s in
            guard let shown = s.shown else { return body() }
            emit("\r\u{1B}[K")
            body()
            emit(Self.statusLine(shown, columns: s.columns))
        }
    }

    /// Ends the status line: it stays on screen as it is and later output starts on the next line.
    func end() {
        state.withLock { s in
            guard s.shown != nil else { return }
            s.shown = nil
            emit("\n")
        }
    }

    /// Reads the width again and redraws the status line for it (after `SIGWINCH`).
    func resized() {
        state.withLock { s in
            s.columns = Self.columns(of: fd) ?? s.columns
            if let shown = s.shown { emit(Self.statusLine(shown, columns: s.columns)) }
        }
    }

    /// `"\r" + line + ESC[K`: back to the first column, the line, clear what a longer line left.
    static func statusLine(_ progress: BatchProgress, columns: Int) -> String {
        "\r" + ProgressLine(progress, columns: columns).text + "\u{1B}[K"
    }

    /// Writes all of `text` to the descriptor (called with the lock held).
    private func emit(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buffer in
                #if canImport(Glibc)
                Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                #else
                Darwin.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                #endif
            }
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return  // stderr is gone: nothing useful to do
            }
        }
    }

    /// Installs the `SIGWINCH` handler and the thread that redraws ``shared`` after each resize;
    /// runs once, at the first draw on a terminal.
    ///
    /// The handler only writes a byte to a pipe (`write` is async-signal-safe; `errno` is kept);
    /// the thread blocks reading the pipe — never a Swift concurrency thread — and each byte
    /// reads the width again and redraws. Resizes that come while a redraw runs coalesce.
    private static let watchResizes: Void = {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        resizePipeWriteEnd = fds[1]
        let readEnd = fds[0]
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 64)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if n > 0 {
                    TerminalDisplay.shared.resized()
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
        }
        reader.start()
        _ = signal(SIGWINCH) { _ in
            let saved = errno
            var byte: UInt8 = 1
            _ = write(resizePipeWriteEnd, &byte, 1)
            errno = saved
        }
        // A resize between the first read of the width and this point sent no signal we saw:
        // read the width once more.
        var byte: UInt8 = 0
        _ = write(fds[1], &byte, 1)
    }()
}
