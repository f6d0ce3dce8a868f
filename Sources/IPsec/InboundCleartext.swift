// InboundCleartext: which inbound cleartext the kernel must drop, as disjoint
// (source prefix, destination prefix) pairs for nft's require_in sets. Control path
// only (runs when a snapshot is built).
//
// The SPD answers per packet by the most specific inbound flow; an nft set has no
// order. So the flows are painted from the least specific to the most specific (the
// reverse of the SPD's order, equal keys keeping the first flow on top): a flow that
// drops cleartext adds its rectangle of the (source, destination) plane, any other
// flow cuts its rectangle out of what is painted. What remains is exactly where the
// most specific flow drops cleartext, in pieces that do not overlap (nft refuses
// overlapping intervals). A bypass /32 pair inside a require /24 pair thus lets its
// cleartext in, as the SPD says.
//
// The sets hold addresses only. A require or dontacq flow that names a protocol or
// ports drops all cleartext between its addresses (fail closed); a deny, bypass, use
// or acquire flow that names them paints nothing and cuts nothing.

import EncCore

extension SPD {
    /// The (source, destination) pairs whose cleartext input is dropped: where the
    /// most specific inbound flow is require, dontacq or deny (by addresses).
    public var inboundCleartextDrops: [(IPPrefix, IPPrefix)] {
        var painted: [(IPPrefix, IPPrefix)] = []
        for i in inboundOrder.reversed() {
            let f = flows[i]
            let narrowed = f.upperProtocol != nil || f.sourcePort != nil || f.destinationPort != nil
            let drops: Bool
            switch f.type {
            case .require, .dontacq: drops = true
            case .deny: if narrowed { continue }; drops = true
            case .bypass, .use, .acquire: if narrowed { continue }; drops = false
            }
            let r = (f.source, f.destination)
            painted = painted.flatMap { SPD.subtract(r, from: $0) }
            if drops { painted.append(r) }
        }
        return painted
    }

    /// `a` less the part `b` covers: at most one piece per bit the prefixes differ in.
    static func subtract(_ b: (IPPrefix, IPPrefix), from a: (IPPrefix, IPPrefix)) -> [(IPPrefix, IPPrefix)] {
        guard let src = intersection(a.0, b.0), let dst = intersection(a.1, b.1) else { return [a] }
        return difference(a.0, src).map { ($0, a.1) } + difference(a.1, dst).map { (src, $0) }
    }

    /// The smaller of two nested prefixes; nil when they are disjoint (prefixes never
    /// overlap otherwise) or of different families.
    static func intersection(_ a: IPPrefix, _ b: IPPrefix) -> IPPrefix? {
        guard a.family == b.family else { return nil }
        if a.length <= b.length { return a.contains(b.address) ? b : nil }
        return b.contains(a.address) ? a : nil
    }

    /// `outer` less `inner` (inside it) as prefixes: the sibling of each step from
    /// `outer` down to `inner`.
    static func difference(_ outer: IPPrefix, _ inner: IPPrefix) -> [IPPrefix] {
        var out: [IPPrefix] = []
        var length = outer.length
        while length < inner.length {
            let bit = length
            let a = inner.address
            let flipped = bit < 64
                ? IPAddress(family: a.family, hi: a.hi ^ (1 << UInt64(63 - bit)), lo: a.lo)
                : IPAddress(family: a.family, hi: a.hi, lo: a.lo ^ (1 << UInt64(127 - bit)))
            length += 1
            out.append(IPPrefix(flipped, length: length))
        }
        return out
    }
}
