import Synchronization

/// An input sequence shared by the workers of a run: one worker at a time pulls from it.
///
/// The iterator is not `Sendable` and its `next()` may suspend, so a `Mutex` cannot guard it;
/// an async lock does (waiters park as continuations, resumed outside the lock).
// @unchecked Sendable: the one mutable field, `iterator`, is only touched by the holder of the
// async lock `lock` (see `next()`); every other field is a `Mutex` or an `Atomic`.
final class SharedInput<Base: AsyncSequence & Sendable>: @unchecked Sendable where Base.Element == BatchRequest, Base.Failure == Never {
    private var iterator: Base.AsyncIterator
    private let lock = Mutex<LockState>(LockState())
    private let exhausted = Atomic<Bool>(false)

    private struct LockState {
        var held = false
        var waiters = RingBuffer<CheckedContinuation<Void, Never>>(capacity: 8)
    }

    init(_ base: Base) { iterator = base.makeAsyncIterator() }

    /// The next request, or `nil` when the input is exhausted.
    func next() async -> BatchRequest? {
        if exhausted.load(ordering: .acquiring) { return nil }
        await acquire()
        defer { release() }
        if exhausted.load(ordering: .acquiring) { return nil }
        let r = await iterator.next(isolation: nil)
        if r == nil { exhausted.store(true, ordering: .releasing) }
        return r
    }

    private func acquire() async {
        let got = lock.withLock { s -> Bool in
            if !s.held {
                s.held = true
                return true
            }
            return false
        }
        if got { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = lock.withLock { s -> Bool in
                if !s.held {
                    s.held = true
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    private func release() {
        // Hand the lock straight to the next waiter, if any.
        let next = lock.withLock { s -> CheckedContinuation<Void, Never>? in
            if let c = s.waiters.popFirst() { return c }
            s.held = false
            return nil
        }
        next?.resume()
    }
}
