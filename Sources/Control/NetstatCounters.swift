// encstat -s / -p: counters as netstat(1) prints them.
//
// The daemon sends every counter by its stable name (IPsec.Counter.name); this file
// rebuilds a CounterSnapshot from those names so that esp, ah and ipsec print through
// CounterSnapshot.report, the same text OpenBSD's netstat prints. The enc group is
// encd's own: enc0 traffic first, then encd's drop reasons and events, then each of
// encd's NFQUEUE queues with the kernel's figures, indented as netstat indents
// sub-items.

import IPsec

public enum NetstatCounters {
    /// Counter by stable name, for decoding responses.
    public static let byName: [String: Counter] = {
        var m: [String: Counter] = [:]
        for c in Counter.allCases { m[c.name] = c }
        return m
    }()

    /// The groups `-s` prints, in order.
    public static let allGroups: [CounterGroup] = [.esp, .ah, .ipsec, .enc]

    /// Rebuilds a snapshot from name → value; names this encstat does not know (a newer
    /// daemon) are ignored, names the daemon did not send read as zero.
    public static func snapshot(_ counters: [String: UInt64]) -> CounterSnapshot {
        var values = [UInt64](repeating: 0, count: Counter.allCases.count)
        for (name, v) in counters {
            if let c = byName[name] { values[c.rawValue] = v }
        }
        var s = CounterSnapshot()
        s.merge(values)
        return s
    }

    /// The enc group's counters in print order: enc0 traffic, encd's reasons in
    /// declaration order, then the SA lifetime events (which have no OpenBSD line of
    /// their own except the hard one's "TDBs with hardlimit excess").
    public static let encOrder: [Counter] = {
        let traffic: [Counter] = [.encInputPackets, .encInputBytes, .encOutputPackets, .encOutputBytes]
        let reasons = Counter.allCases.filter { $0.group == .enc && !traffic.contains($0) }
        return traffic + reasons + [.saSoftExpired, .saHardExpired]
    }()

    /// The counters a group's `-j` "counters" object lists.
    public static func counters(in group: CounterGroup) -> [Counter] {
        switch group {
        case .enc: return encOrder
        case .ipsec: return Counter.allCases.filter { $0.group == .esp || $0.group == .ah || $0.group == .ipsec }
        default: return Counter.allCases.filter { $0.group == group }
        }
    }

    /// `netstat -s -p <group>` text for one group (heading included).
    public static func report(_ group: CounterGroup, _ snap: CounterSnapshot, queues: [QueueStatus] = [],
                              hideZeros: Bool = false) -> String {
        guard group == .enc else { return snap.report(group, hideZeros: hideZeros) }
        var out = "enc:\n"
        for c in encOrder {
            let v = snap[c]
            if hideZeros && v == 0 { continue }
            out += "\t\(v) " + Counter.plural(c.encText, v) + "\n"
        }
        for q in queues.sorted(by: { $0.number < $1.number }) {
            out += "\tqueue \(q.number) (\(q.role)):\n"
            let lines: [(UInt64, String)] = [
                (q.received, "packet%s received by encd"),
                (UInt64(q.waiting), "packet%s waiting for a verdict"),
                (q.queueDropped, "packet%s dropped because the queue was full (queue_dropped)"),
                (q.userDropped, "packet%s dropped because encd's socket was full (user_dropped)"),
            ]
            for (v, text) in lines {
                if hideZeros && v == 0 { continue }
                out += "\t\t\(v) " + Counter.plural(text, v) + "\n"
            }
        }
        return out
    }

    /// Several groups one after another, as `netstat -s` prints its protocols.
    public static func report(_ groups: [CounterGroup], _ snap: CounterSnapshot, queues: [QueueStatus] = [],
                              hideZeros: Bool = false) -> String {
        groups.map { report($0, snap, queues: queues, hideZeros: hideZeros) }.joined()
    }

    /// An OpenBSD line's value in a group, by the field's struct member name
    /// (espstat's esps_input → "input"), for JSON.
    public static func fieldName(_ f: OpenBSDField) -> String { String(describing: f) }

    /// A group's lines as field name → value (esp, ah, ipsec) or counter name → value (enc).
    public static func values(_ group: CounterGroup, _ snap: CounterSnapshot, hideZeros: Bool) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        if group == .enc {
            for c in encOrder where !(hideZeros && snap[c] == 0) { out[c.name] = snap[c] }
        } else {
            for f in OpenBSDField.lines(group) {
                let v = snap.value(f, in: group)
                if !(hideZeros && v == 0) { out[fieldName(f)] = v }
            }
        }
        return out
    }
}
