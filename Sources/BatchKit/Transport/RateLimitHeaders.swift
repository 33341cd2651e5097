package import Foundation

/// Parsing of the retry and reset formats the providers use.
package enum RateLimitHeaderParsing {
    /// The delay a server asks for: `retry-after-ms` (milliseconds, fractional allowed), else
    /// `retry-after` as seconds (fractional allowed) or an HTTP date (measured against `now`).
    /// Returns `nil` when neither is present or parseable.
    package static func retryAfter(_ headers: HTTPHeaders, now: Date = Date()) -> Duration? {
        if let ms = headers["retry-after-ms"].flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }), ms >= 0 {
            return .milliseconds(ms)
        }
        guard let v = headers["retry-after"]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        if let s = Double(v), s >= 0 { return .seconds(s) }
        if let date = httpDate(v) { return .seconds(max(0, date.timeIntervalSince(now))) }
        return nil
    }

    /// Parses a Go `time.Duration` string (`1h2m3.5s`, `6m0s`, `20ms`, `7.66s`, `150us`, `10µs`, `5ns`).
    package static func goDuration(_ text: String) -> Duration? {
        var s = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !s.isEmpty else { return nil }
        if s == "0" { return .zero }
        var total = 0.0
        while !s.isEmpty {
            let numEnd = s.firstIndex { !($0.isNumber || $0 == ".") } ?? s.endIndex
            guard numEnd != s.startIndex, let value = Double(s[s.startIndex..<numEnd]) else { return nil }
            s = s[numEnd...]
            let unitEnd = s.firstIndex { $0.isNumber || $0 == "." } ?? s.endIndex
            let unit = s[s.startIndex..<unitEnd]
            s = s[unitEnd...]
            switch unit {
            case "h": total += value * 3600
            case "m": total += value * 60
            case "s": total += value
            case "ms": total += value / 1e3
            case "us", "µs", "μs": total += value / 1e6
            case "ns": total += value / 1e9
            default: return nil
            }
        }
        return .seconds(total)
    }

    /// Parses RFC 3339 (`2025-01-15T14:24:00Z`, `2024-08-20T18:37:24.100435+00:00`, up to nine
    /// fraction digits).
    package static func rfc3339(_ text: String) -> Date? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let u = Array(t.utf8)
        guard u.count >= 20 else { return nil }
        func num(_ a: Int, _ n: Int) -> Int? {
            guard a + n <= u.count else { return nil }
            var v = 0
            for i in a..<(a + n) {
                guard u[i] >= 48 && u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard let year = num(0, 4), u[4] == 45, let month = num(5, 2), u[7] == 45, let day = num(8, 2),
            u[10] == 84 || u[10] == 116 || u[10] == 32, let hour = num(11, 2), u[13] == 58, let minute = num(14, 2),
            u[16] == 58, let second = num(17, 2)
        else { return nil }
        var i = 19
        var fraction = 0.0
        if i < u.count, u[i] == 46 {
            i += 1
            var scale = 0.1
            while i < u.count, u[i] >= 48 && u[i] <= 57 {
                fraction += Double(u[i] - 48) * scale
                scale /= 10
                i += 1
            }
        }
        var offset = 0
        guard i < u.count else { return nil }
        if u[i] == 90 || u[i] == 122 {
            i += 1
        } else if u[i] == 43 || u[i] == 45, let oh = num(i + 1, 2), u.count > i + 3, u[i + 3] == 58, let om = num(i + 4, 2) {
            offset = (oh * 3600 + om * 60) * (u[i] == 43 ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == u.count else { return nil }
        var comps = DateComponents()
        comps.year = year
        comps.month = month
        comps.day = day
        comps.hour = hour
        comps.minute = minute
        comps.second = second
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        guard let base = cal.date(from: comps) else { return nil }
        return base.addingTimeInterval(fraction - Double(offset))
    }

    /// Parses an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`).
    package static func httpDate(_ text: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: text)
    }
}
