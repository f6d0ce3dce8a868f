// SetContents: what encd's nftables sets hold for a security policy database —
// [X]'s candidate pairs (flows_out4/6: the outbound flows' source and destination,
// less pairs another one covers), the inbound cleartext drops (require_in4/6:
// disjoint prefix pairs where the most specific inbound flow forbids cleartext) and
// checks (require_check4/6: pairs where a flow naming a protocol or ports decides, so
// encd judges each packet; see SPD.inboundCleartextPlan), and with
// ipsec.use_fail_open the `use` pairs that may pass in cleartext while encd is not
// running (flows_use4/6, SPD.useFailOpenPairs).
// Control path: computed at start-up, where they are installed in the same
// transaction as the table, and on every reload.

import EncCore
import IPsec
import Kernel

extension EncDaemon {
    /// The contents of every set `EncdRuleset.table(rc)` has.
    static func setContents(_ spd: SPD, _ rc: EncdRulesetConfig = EncdRulesetConfig()) -> [NftSetContents] {
        let outbound = spd.flows.filter { $0.direction == .outbound }
        let cleartext = spd.inboundCleartextPlan
        var out: [NftSetContents] = []
        for (family, flows) in [(AddressFamily.inet, EncdRuleset.flowSet4), (.inet6, EncdRuleset.flowSet6)] {
            out.append(NftSetContents(NftAddressPairSet(flows, family: family),
                                      candidatePairs(outbound.filter { $0.source.family == family })))
        }
        if rc.useFailOpen {
            let use = spd.useFailOpenPairs
            for (family, name) in [(AddressFamily.inet, EncdRuleset.useSet4), (.inet6, EncdRuleset.useSet6)] {
                out.append(NftSetContents(NftAddressPairSet(name, family: family), use.filter { $0.0.family == family }))
            }
        }
        for (name, pairs) in [(EncdRuleset.requireSet4, cleartext.drops), (EncdRuleset.requireSet6, cleartext.drops),
                              (EncdRuleset.checkSet4, cleartext.checks), (EncdRuleset.checkSet6, cleartext.checks)] {
            let family: AddressFamily = name.hasSuffix("6") ? .inet6 : .inet
            out.append(NftSetContents(NftAddressPairSet(name, family: family), pairs.filter { $0.0.family == family }))
        }
        return out
    }

    /// [X]'s candidate sets hold (any, any): every packet goes to [X], which decides
    /// with the full SPD; the use sets are empty: nothing fails open. The fallback when
    /// nftables refuses the exact pairs.
    static func widened(_ contents: [NftSetContents]) -> [NftSetContents] {
        contents.map { c in
            if isCandidateSet(c.set) { return NftSetContents(c.set, [(.any(c.set.family), .any(c.set.family))]) }
            if isUseSet(c.set) { return NftSetContents(c.set, []) }
            return c
        }
    }

    static func isUseSet(_ set: NftAddressPairSet) -> Bool {
        set.name == EncdRuleset.useSet4 || set.name == EncdRuleset.useSet6
    }

    static func isCandidateSet(_ set: NftAddressPairSet) -> Bool {
        set.name == EncdRuleset.flowSet4 || set.name == EncdRuleset.flowSet6
    }

    /// The (source, destination) pairs [X] queues: every outbound flow's, less the
    /// pairs another pair covers (nft refuses overlapping intervals in one set).
    static func candidatePairs(_ flows: [FlowSpec]) -> [(IPPrefix, IPPrefix)] {
        func covers(_ a: (IPPrefix, IPPrefix), _ b: (IPPrefix, IPPrefix)) -> Bool {
            a.0.length <= b.0.length && a.0.contains(b.0.address) && a.1.length <= b.1.length && a.1.contains(b.1.address)
        }
        var out: [(IPPrefix, IPPrefix)] = []
        for f in flows {
            let p = (f.source, f.destination)
            if out.contains(where: { covers($0, p) }) { continue }
            out.removeAll { covers(p, $0) }
            out.append(p)
        }
        return out
    }
}
