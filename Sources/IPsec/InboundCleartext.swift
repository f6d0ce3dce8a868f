// InboundCleartext: what the kernel does with inbound cleartext (packets that did not
// come through enc0), as disjoint (source prefix, destination prefix) pairs for nft's
// sets. Control path only (runs when a snapshot is built).
//
// The SPD answers per packet by the most specific inbound flow; an nft set has no
// order and holds addresses only. So the flows are painted from the least specific to
// the most specific (the reverse of the SPD's order, equal keys keeping the first flow
// on top) onto the (source, destination) plane, in two colours:
//
//   drop   every packet between these addresses is dropped (require, dontacq, deny)
//   check  the outcome depends on the protocol or ports: encd decides per packet
//
// A flow that names neither protocol nor ports decides its whole rectangle: it cuts
// its rectangle out of everything painted, and paints it `drop` when it forbids
// cleartext. A flow that names them decides only some packets there: where the
// outcome painted so far differs from its own, the rectangle becomes `check`. What
// remains unpainted passes. Pieces never overlap (nft refuses overlapping intervals).
// So a bypass /32 pair inside a require /24 pair lets its cleartext in, and a bypass
// flow for UDP port 500 inside it sends that host pair to encd, which lets UDP 500
// in and drops the rest — and while encd is not running the kernel drops it all.

import EncCore

/// The kernel's part of the inbound cleartext rule; see the file comment.
public struct InboundCleartextPlan: Sendable {
    /// Every cleartext packet between these addresses is dropped.
    public var drops: [(IPPrefix, IPPrefix)] = []
    /// Cleartext between these addresses goes to encd, which asks `inboundRequiresIPsec`.
    public var checks: [(IPPrefix, IPPrefix)] = []
}

extension SPD {
    public var inboundCleartextPlan: InboundCleartextPlan {
        enum Colour { case drop, check }
        typealias Piece = (rect: (IPPrefix, IPPrefix), colour: Colour)
        var painted: [Piece] = []
        for i in inboundOrder.reversed() {
            let f = flows[i]
            let r = (f.source, f.destination)
            let narrowed = f.upperProtocol != nil || f.sourcePort != nil || f.destinationPort != nil
            let drops: Bool
            switch f.type {
            case .require, .dontacq, .deny: drops = true
            case .bypass, .use, .acquire: drops = false
            }
            if !narrowed {
                painted = painted.flatMap { p in SPD.subtract(r, from: p.rect).map { ($0, p.colour) } }
                if drops { painted.append((r, .drop)) }
            } else if drops {
                // Drop pieces stay; checks stay; what passed until now becomes a check.
                var passing = [r]
                for p in painted { passing = passing.flatMap { SPD.subtract(p.rect, from: $0) } }
                painted += passing.map { ($0, .check) }
            } else {
                // What dropped until now becomes a check inside the rectangle.
                painted = painted.flatMap { p -> [Piece] in
                    guard p.colour == .drop, let inside = SPD.intersection(p.rect, r) else { return [p] }
                    return SPD.subtract(r, from: p.rect).map { ($0, .drop) } + [(inside, .check)]
                }
            }
        }
        return InboundCleartextPlan(drops: painted.filter { $0.colour == .drop }.map(\.rect),
                                    checks: painted.filter { $0.colour == .check }.map(\.rect))
    }

    /// `a` less the part `b` covers: at most one piece per bit the prefixes differ in.
    static func subtract(_ b: (IPPrefix, IPPrefix), from a: (IPPrefix, IPPrefix)) -> [(IPPrefix, IPPrefix)] {
        guard let overlap = intersection(a, b) else { return [a] }
        return difference(a.0, overlap.0).map { ($0, a.1) } + difference(a.1, overlap.1).map { (overlap.0, $0) }
    }

    /// Where two rectangles overlap; nil when they do not.
    static func intersection(_ a: (IPPrefix, IPPrefix), _ b: (IPPrefix, IPPrefix)) -> (IPPrefix, IPPrefix)? {
        guard let src = intersection(a.0, b.0), let dst = intersection(a.1, b.1) else { return nil }
        return (src, dst)
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
