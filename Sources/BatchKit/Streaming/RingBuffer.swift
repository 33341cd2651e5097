/// A growable FIFO queue with O(1) push and pop.
///
/// The slot count is a power of two, so positions wrap with a mask rather than a division, and
/// `popFirst` moves the element out of its slot rather than copying it and then clearing the slot:
/// every event of a run passes through one of these.
struct RingBuffer<Element> {
    private var storage: [Element?]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int = 16) {
        var slots = 1
        while slots < capacity { slots <<= 1 }
        storage = Array(repeating: nil, count: slots)
    }

    var isEmpty: Bool { count == 0 }

    private var mask: Int { storage.count &- 1 }

    mutating func append(_ e: Element) {
        if count == storage.count { grow() }
        storage[(head &+ count) & mask] = e
        count &+= 1
    }

    /// The oldest element, without removing it.
    var first: Element? { count > 0 ? storage[head] : nil }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let e = storage[head].take()
        head = (head &+ 1) & mask
        count &-= 1
        return e
    }

    mutating func removeAll() {
        while popFirst() != nil {}
    }

    private mutating func grow() {
        var n: [Element?] = Array(repeating: nil, count: storage.count * 2)
        for i in 0..<count { n[i] = storage[(head &+ i) & mask].take() }
        storage = n
        head = 0
    }
}

extension RingBuffer: Sendable where Element: Sendable {}
