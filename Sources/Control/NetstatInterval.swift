// encstat -w wait [-c count]: one line per interval, as netstat -w prints interface
// traffic. The first line holds the totals since encd started, every later line the
// change over the last interval; the header repeats every 21 lines as netstat's does.
//
//        ipkts       ibytes      opkts       obytes   idrops   odrops
//
// ipkts/ibytes/opkts/obytes are the group's input and output packets and bytes;
// idrops/odrops are its drops on each side. Groups: ipsec (the default: ESP and AH
// together, OpenBSD's ipsecstat), esp or ah alone, or enc (enc0's cleartext packets
// and bytes, and encd's own drop reasons at [X], enc0 and the queues).

import IPsec

public struct IntervalSample: Codable, Sendable, Equatable {
    public var ipkts: UInt64
    public var ibytes: UInt64
    public var opkts: UInt64
    public var obytes: UInt64
    public var idrops: UInt64
    public var odrops: UInt64

    public init(ipkts: UInt64, ibytes: UInt64, opkts: UInt64, obytes: UInt64, idrops: UInt64, odrops: UInt64) {
        (self.ipkts, self.ibytes, self.opkts, self.obytes, self.idrops, self.odrops) = (ipkts, ibytes, opkts, obytes, idrops, odrops)
    }

    /// The change from `old` to `self`; a counter that went down (encd restarted)
    /// shows its new value.
    public func since(_ old: IntervalSample) -> IntervalSample {
        func d(_ a: UInt64, _ b: UInt64) -> UInt64 { a >= b ? a - b : a }
        return IntervalSample(ipkts: d(ipkts, old.ipkts), ibytes: d(ibytes, old.ibytes), opkts: d(opkts, old.opkts),
                              obytes: d(obytes, old.obytes), idrops: d(idrops, old.idrops), odrops: d(odrops, old.odrops))
    }
}

public enum NetstatInterval {
    public static let linesPerHeader = 21
    static let widths = [12, 12, 10, 12, 8, 8]

    public static var header: String {
        let names = ["ipkts", "ibytes", "opkts", "obytes", "idrops", "odrops"]
        return zip(names, widths).map { pad($0, $1) }.joined(separator: " ") + "\n"
    }

    public static func line(_ s: IntervalSample) -> String {
        let v = [s.ipkts, s.ibytes, s.opkts, s.obytes, s.idrops, s.odrops]
        return zip(v, widths).map { pad(String($0), $1) }.joined(separator: " ") + "\n"
    }

    /// The group's main figures in a snapshot.
    public static func sample(_ group: CounterGroup, _ snap: CounterSnapshot) -> IntervalSample {
        switch group {
        case .esp, .ah, .ipsec:
            let drops = dropSum(snap) { group == .ipsec ? ($0.group == .esp || $0.group == .ah) : $0.group == group }
            return IntervalSample(ipkts: snap.value(.input, in: group), ibytes: snap.value(.ibytes, in: group),
                                  opkts: snap.value(.output, in: group), obytes: snap.value(.obytes, in: group),
                                  idrops: drops.0, odrops: drops.1)
        case .enc:
            let drops = dropSum(snap) { $0.group == .enc }
            return IntervalSample(ipkts: snap[.encInputPackets], ibytes: snap[.encInputBytes],
                                  opkts: snap[.encOutputPackets], obytes: snap[.encOutputBytes],
                                  idrops: drops.0, odrops: drops.1)
        }
    }

    static func dropSum(_ snap: CounterSnapshot, _ include: (Counter) -> Bool) -> (UInt64, UInt64) {
        var i: UInt64 = 0, o: UInt64 = 0
        for c in Counter.allCases where include(c) {
            switch c.dropSide {
            case .inbound?: i &+= snap[c]
            case .outbound?: o &+= snap[c]
            case nil: break
            }
        }
        return (i, o)
    }

    /// The text for the `index`-th sample (0 = totals), header included when due.
    public static func text(index: Int, current: IntervalSample, previous: IntervalSample?) -> String {
        let shown = previous.map { current.since($0) } ?? current
        return (index % linesPerHeader == 0 ? header : "") + line(shown)
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }
}
