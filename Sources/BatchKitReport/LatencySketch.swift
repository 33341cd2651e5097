import BatchKit
import Foundation

/// A streaming quantile sketch for positive values (latencies in milliseconds): logarithmic
/// buckets whose width makes every quantile it returns within ``relativeError`` of the exact
/// value of that rank, in memory that grows with the logarithm of the value range (about 1,200
/// buckets for 1 ms to 10^10 ms), never with the count.
///
/// ```swift
/// var sketch = LatencySketch()
/// for ms in latencies { sketch.add(ms) }
/// let p99 = sketch.quantile(0.99)   // within 1 % of the exact 99th-percentile value
/// ```
///
/// Quantiles are by nearest rank: `quantile(q)` estimates the value of rank `⌈q·n⌉` (1-based) in
/// sorted order. Bucket `i` holds the values in `(γ^(i-1), γ^i]` with `γ = (1+α)/(1−α)`, and
/// answers `2γ^i/(γ+1)`, which is within `α` of any value in the bucket. Zero and negative values
/// are counted apart and answer 0.
public struct LatencySketch: Sendable {
    /// The bound on the relative error of every quantile: 1 %.
    public static let relativeError = 0.01

    private static let gamma = (1 + relativeError) / (1 - relativeError)
    private static let logGamma = log(gamma)

    /// Counts per bucket; `counts[k]` is bucket `offset + k`.
    private var counts: [Int] = []
    private var offset = 0
    private var zeros = 0
    /// Values added.
    public private(set) var count = 0
    /// The smallest value added (exact), `nil` when empty.
    public private(set) var min: Double?
    /// The largest value added (exact), `nil` when empty.
    public private(set) var max: Double?
    /// The sum of the values added (for the mean).
    public private(set) var sum = 0.0

    /// An empty sketch.
    public init() {}

    /// The bucket of a positive value.
    static func index(of value: Double) -> Int { Int((log(value) / logGamma).rounded(.up)) }

    /// The value bucket `i` answers for.
    static func representative(of i: Int) -> Double { 2 * pow(gamma, Double(i)) / (gamma + 1) }

    /// Counts one value (non-finite values are ignored).
    public mutating func add(_ value: Double) {
        guard value.isFinite else { return }
        count += 1
        sum += value
        min = Swift.min(min ?? value, value)
        max = Swift.max(max ?? value, value)
        guard value > 0 else {
            zeros += 1
            return
        }
        add(1, toBucket: Self.index(of: value))
    }

    /// Adds `n` to bucket `i`, growing the bucket array to reach it.
    private mutating func add(_ n: Int, toBucket i: Int) {
        if counts.isEmpty {
            offset = i
            counts = [0]
        } else if i < offset {
            counts.insert(contentsOf: repeatElement(0, count: offset - i), at: 0)
            offset = i
        } else if i >= offset + counts.count {
            counts.append(contentsOf: repeatElement(0, count: i - offset - counts.count + 1))
        }
        counts[i - offset] += n
    }

    /// Adds every value of `other`.
    public mutating func merge(_ other: LatencySketch) {
        guard other.count > 0 else { return }
        count += other.count
        sum += other.sum
        zeros += other.zeros
        min = Swift.min(min ?? other.min!, other.min!)
        max = Swift.max(max ?? other.max!, other.max!)
        for (k, c) in other.counts.enumerated() where c > 0 {
            add(c, toBucket: other.offset + k)
        }
    }

    /// The estimated value of rank `⌈q·count⌉` (at least 1), within ``relativeError`` of the exact
    /// value and never outside `min...max`; `nil` when empty.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0, let lo = min, let hi = max else { return nil }
        let rank = Swift.max(1, Swift.min(count, Int((q * Double(count)).rounded(.up))))
        if rank <= zeros { return Swift.min(hi, Swift.max(lo, 0)) }
        var seen = zeros
        for (k, c) in counts.enumerated() {
            seen += c
            if seen >= rank { return Swift.min(hi, Swift.max(lo, Self.representative(of: offset + k))) }
        }
        return hi
    }

    /// The mean value, `nil` when empty.
    public var mean: Double? { count > 0 ? sum / Double(count) : nil }

    /// The counts as `(value, count)` pairs in increasing value: each bucket's representative value
    /// (0 for zeros), empty buckets left out. For drawing a histogram.
    public var buckets: [(value: Double, count: Int)] {
        var out: [(value: Double, count: Int)] = []
        if zeros > 0 { out.append((0, zeros)) }
        for (k, c) in counts.enumerated() where c > 0 {
            out.append((Swift.min(max ?? 0, Swift.max(min ?? 0, Self.representative(of: offset + k))), c))
        }
        return out
    }
}
