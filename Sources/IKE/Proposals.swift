// Choosing a proposal as the responder (RFC 7296 §2.7, §3.3.6): the peer offers
// proposals in its order of preference; encd-iked answers with exactly one of them,
// reduced to one transform of each type. The first of the administrator's proposals
// (in the configuration's order, as strongSwan prefers its own by default) that an
// offered proposal can satisfy wins; within it, for each transform type the
// administrator's proposal names, the first offered transform it accepts. An offered
// proposal with a transform type the administrator's does not name does not match
// (a DH group offered where none is configured, say). Attributes must agree exactly
// (the key length of AES). Nothing matches: NO_PROPOSAL_CHOSEN (§2.21).

public enum IKEProposalSelection {
    /// The proposal to answer with, or nil when none can be accepted.
    public static func select(offered: [IKEProposal], acceptable: [IKEProposal]) -> IKEProposal? {
        for mine in acceptable {
            for theirs in offered where theirs.protocolID == mine.protocolID {
                if let chosen = reduce(theirs, to: mine) { return chosen }
            }
        }
        return nil
    }

    /// `theirs` with one transform per type, each also in `mine`; nil when a type of
    /// either side finds no counterpart.
    static func reduce(_ theirs: IKEProposal, to mine: IKEProposal) -> IKEProposal? {
        let theirTypes = Set(theirs.transforms.map(\.type)), myTypes = Set(mine.transforms.map(\.type))
        guard theirTypes == myTypes else { return nil }
        var chosen: [IKETransform] = []
        for t in theirs.transforms where !chosen.contains(where: { $0.type == t.type }) {
            // The first offered transform of this type that mine accepts.
            guard let pick = theirs.transforms.first(where: { o in o.type == t.type && mine.transforms.contains(o) }) else { return nil }
            chosen.append(pick)
        }
        return IKEProposal(number: theirs.number, protocolID: theirs.protocolID, spi: theirs.spi, transforms: chosen)
    }
}
