// UseFailOpen: which outbound `use` traffic may pass in cleartext while encd is not
// running (ipsec.use_fail_open), as disjoint (source prefix, destination prefix) pairs
// for nft's flows_use sets. Control path only (runs when the sets are computed).
//
// With encd running the SPD decides every packet; with encd gone the kernel can only
// match addresses. A `use` flow's pair may go into the set only if no packet it covers
// could have a flow of another type as its most specific match, since that packet
// would then leave in cleartext against its policy:
//   - a non-use outbound flow that overlaps the use flow (both its source and its
//     destination prefixes overlap) and comes first in the SPD's order
//     (SPD.moreSpecific) excludes it;
//   - a use flow naming a protocol or ports covers only part of the traffic between
//     its addresses, and the set cannot say which part: any overlapping non-use
//     outbound flow excludes it.
// A use flow without protocol and ports matches every packet of its rectangle, so
// flows after it in the order never decide there. Overlapping use pairs are merged
// into disjoint pieces (nft refuses overlapping intervals).

import EncCore

extension SPD {
    /// The (source, destination) pairs whose outbound traffic a `use` flow decides
    /// whatever the packet's protocol and ports, so it may pass in cleartext while
    /// encd is not running. Disjoint pieces.
    public var useFailOpenPairs: [(IPPrefix, IPPrefix)] {
        var painted: [(IPPrefix, IPPrefix)] = []
        for (rank, i) in outboundOrder.enumerated() where flows[i].type == .use {
            let use = flows[i]
            let narrowed = use.upperProtocol != nil || use.sourcePort != nil || use.destinationPort != nil
            let overridden = outboundOrder.enumerated().contains { other, j in
                flows[j].type != .use && (narrowed || other < rank) && SPD.overlaps(flows[j], use)
            }
            if overridden { continue }
            let r = (use.source, use.destination)
            painted = painted.flatMap { SPD.subtract(r, from: $0) } + [r]
        }
        return painted
    }

    /// Whether some packet could match both flows by address: their source prefixes
    /// overlap and their destination prefixes overlap.
    static func overlaps(_ a: FlowSpec, _ b: FlowSpec) -> Bool {
        intersection(a.source, b.source) != nil && intersection(a.destination, b.destination) != nil
    }
}
