// encstat -j: the same selection as the text output, as one JSON object (keys sorted,
// snake_case); with -w one compact object per line (JSON Lines). Keys:
//   statistics  group → OpenBSD line → value: esp/ah/ipsec by the field names of
//               OpenBSD's struct espstat/ahstat/ipsecstat without prefix ("input",
//               "badauth", "replay" …), enc by counter name
//   counters    counter name → value, every counter of the selected groups (the finer
//               reasons behind the OpenBSD lines)
//   queues      encd's NFQUEUE queues (with enc selected)
//   flows       -r;  sas  -a (the SA's ipsecctl line in "text", never with keys)
// -ss leaves zero values out of statistics and counters.

import Foundation
import IPsec

public struct NetstatDocument: Codable, Sendable, Equatable {
    public var statistics: [String: [String: UInt64]]?
    public var counters: [String: UInt64]?
    public var queues: [QueueStatus]?
    public var flows: [FlowStatus]?
    public var sas: [SAStatus]?

    public init() {}
}

public enum NetstatJSON {
    public static func encoder(pretty: Bool) -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        return e
    }

    /// The counter part of a document for `groups`.
    public static func counters(_ doc: inout NetstatDocument, _ groups: [CounterGroup], _ snap: CounterSnapshot,
                                queues: [QueueStatus], hideZeros: Bool) {
        var stats: [String: [String: UInt64]] = [:]
        var raw: [String: UInt64] = [:]
        for g in groups {
            stats[g.rawValue] = NetstatCounters.values(g, snap, hideZeros: hideZeros)
            for c in NetstatCounters.counters(in: g) where !(hideZeros && snap[c] == 0) { raw[c.name] = snap[c] }
        }
        doc.statistics = stats
        doc.counters = raw
        if groups.contains(.enc) { doc.queues = queues.sorted { $0.number < $1.number } }
    }

    /// SAs for output: sorted, and the ipsecctl text cut before any key (keys follow on
    /// continuation lines, and encstat never asks for them; this holds even if a daemon sent them).
    public static func withoutKeys(_ sas: [SAStatus]) -> [SAStatus] {
        NetstatSAs.sorted(sas).map { sa in
            var s = sa
            s.text = strippingKeys(sa.text)
            return s
        }
    }

    public static func strippingKeys(_ text: String) -> String {
        var t = text
        if let r = t.range(of: " \\\n") { t = String(t[..<r.lowerBound]) }
        for word in ["authkey", "enckey"] {
            if let r = t.range(of: " " + word) { t = String(t[..<r.lowerBound]) }
        }
        return t
    }

    public static func text(_ doc: NetstatDocument) throws -> String {
        String(decoding: try encoder(pretty: true).encode(doc), as: UTF8.self) + "\n"
    }

    public static func line(_ sample: IntervalSample) throws -> String {
        String(decoding: try encoder(pretty: false).encode(sample), as: UTF8.self) + "\n"
    }
}
