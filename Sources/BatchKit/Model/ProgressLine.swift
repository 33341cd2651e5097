import Foundation

/// A run's progress as one line that fits a terminal of a given width: a pure function of the
/// counts and the width, for a status line redrawn in place (`"\r" + line.text + "\u{1B}[K"`).
///
/// ```swift
/// case .progress(let p):
///     let line = ProgressLine(p, columns: terminalColumns)
///     FileHandle.standardError.write(Data(("\r" + line.text + "\u{1B}[K").utf8))
/// ```
///
/// Wide: `[=========>          ]  217/3000 7%  ok 217  failed 0  in flight 49  57.8/s  ETA 48s
/// tokens 12.3k in / 2.1k out  $0.0123`. As the width shrinks the bar shortens (30 down to 10
/// columns) and fields are dropped in ``dropOrder`` (cost first, the failure count last); below
/// that the bar goes, and the count alone is cut to fit. The text never takes more than
/// `columns - 1` columns: writing into the last column makes some terminals wrap, and a wrapped
/// status line can no longer be redrawn in place.
package struct ProgressLine: Sendable, Hashable {
    /// One part of the line.
    package enum Field: String, Sendable, Hashable, CaseIterable {
        /// `[=====>    ]`, when the total is known.
        case bar
        /// `217/3000 7%` (or `217 done` without a total); always kept.
        case count
        /// `ok 217`.
        case succeeded
        /// `failed 3`.
        case failed
        /// `in flight 49`.
        case inFlight
        /// `57.8/s`.
        case rate
        /// `ETA 48s`.
        case eta
        /// `tokens 12.3k in / 2.1k out`.
        case tokens
        /// `$0.0123`, when priced.
        case cost
        /// `remote: in_progress` (native batch).
        case remoteStatus
    }

    /// The order fields are dropped in as the width shrinks: the least useful first.
    package static let dropOrder: [Field] = [.cost, .tokens, .eta, .inFlight, .rate, .succeeded, .remoteStatus, .failed]

    /// The widest and narrowest bar, brackets included.
    package static let barWidths: ClosedRange<Int> = 10...30

    /// The line, at most `columns - 1` characters, plain ASCII apart from what the remote status holds.
    package let text: String
    /// The fields kept, in the order shown.
    package let fields: [Field]
    /// Columns the bar takes (brackets included); 0 without a bar.
    package let barWidth: Int

    /// Lays out `progress` for a terminal `columns` wide.
    package init(_ progress: BatchProgress, columns: Int) {
        let budget = max(1, columns - 1)
        let parts = Self.parts(progress)
        let count = Self.countText(progress)
        let fraction: Double? = progress.total.flatMap { $0 > 0 ? min(1, Double(progress.completed) / Double($0)) : nil }
        for dropped in 0...Self.dropOrder.count {
            let gone = Set(Self.dropOrder.prefix(dropped))
            let kept = parts.filter { !gone.contains($0.field) }
            let text = ([count] + kept.map(\.text)).joined(separator: "  ")
            if let fraction {
                let room = budget - text.count - 2
                if room >= Self.barWidths.lowerBound {
                    let width = min(Self.barWidths.upperBound, room)
                    self.text = Self.bar(fraction, width: width) + "  " + text
                    self.fields = [.bar, .count] + kept.map(\.field)
                    self.barWidth = width
                    return
                }
            } else if text.count <= budget {
                self.text = text
                self.fields = [.count] + kept.map(\.field)
                self.barWidth = 0
                return
            }
        }
        // Not even the count with the shortest bar: the count alone, cut if it must be.
        self.text = count.count <= budget ? count : String(count.prefix(budget))
        self.fields = [.count]
        self.barWidth = 0
    }

    /// `[=====>    ]`, `width` columns in all.
    static func bar(_ fraction: Double, width: Int) -> String {
        let inner = max(0, width - 2)
        let filled = min(inner, Int((fraction * Double(inner)).rounded(.down)))
        var s = "[" + String(repeating: "=", count: filled)
        if filled < inner {
            s += ">" + String(repeating: " ", count: inner - filled - 1)
        }
        return s + "]"
    }

    static func countText(_ p: BatchProgress) -> String {
        guard let total = p.total, total > 0 else { return "\(p.completed) done" }
        let percent = Int((min(1, Double(p.completed) / Double(total)) * 100).rounded(.down))
        return "\(p.completed)/\(total) \(percent)%"
    }

    /// The optional fields present in `p`, in display order.
    static func parts(_ p: BatchProgress) -> [(field: Field, text: String)] {
        var parts: [(Field, String)] = [(.succeeded, "ok \(p.succeeded)"), (.failed, "failed \(p.failed)"), (.inFlight, "in flight \(p.inFlight)")]
        parts.append((.rate, String(format: "%.1f/s", p.requestsPerSecond)))
        if let eta = p.eta, let total = p.total, p.completed < total { parts.append((.eta, "ETA " + compactDuration(eta))) }
        if p.usage.inputTokens > 0 || p.usage.outputTokens > 0 {
            parts.append((.tokens, "tokens \(compactCount(p.usage.inputTokens)) in / \(compactCount(p.usage.outputTokens)) out"))
        }
        if let cost = p.cost { parts.append((.cost, dollars(cost))) }
        if let remote = p.remoteStatus { parts.append((.remoteStatus, "remote: " + remote)) }
        return parts
    }

    /// `950`, `12.3k`, `4.56M`.
    static func compactCount(_ n: Int) -> String {
        switch n {
        case ..<1_000: return "\(n)"
        case ..<1_000_000: return String(format: "%.1fk", Double(n) / 1e3)
        case ..<1_000_000_000: return String(format: "%.2fM", Double(n) / 1e6)
        default: return String(format: "%.2fG", Double(n) / 1e9)
        }
    }

    /// `48s`, `3m 05s`, `2h 01m`.
    static func compactDuration(_ d: Duration) -> String {
        let s = max(0, Int(d.components.seconds))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm %02ds", s / 60, s % 60) }
        return String(format: "%dh %02dm", s / 3600, (s % 3600) / 60)
    }

    /// `$0.0123`.
    static func dollars(_ value: Double) -> String {
        if value == 0 { return "$0" }
        if value < 0.01 { return String(format: "$%.5f", value) }
        if value < 100 { return String(format: "$%.4f", value) }
        return String(format: "$%.2f", value)
    }
}
