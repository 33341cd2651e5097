/// A growable FIFO queue with O(1) push and pop.
struct RingBuffer<Element> {
    private var storage: [Element?]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int = 16) { storage = Array(repeating: nil, count: Swift.max(1, capacity)) }

    var isEmpty: Bool { count == 0 }

    mutating func append(_ e: Element) {
        if count == storage.count { grow() }
        storage[(head + count) % storage.count] = e
        count += 1
    }

    /// The oldest element, without removing it.
    var first: Element? { count > 0 ? storage[head] : nil }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let e = storage[head]
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        return e
    }

    mutating func removeAll() {
        while popFirst() != nil {}
    }

    private mutating func grow() {
        var n: [Element?] = Array(repeating: nil, count: storage.count * 2)
        for i in 0..<count { n[i] = storage[(head + i) % storage.count] }
        storage = n
        head = 0
    }
}

extension RingBuffer: Sendable where Element: Sendable {}
