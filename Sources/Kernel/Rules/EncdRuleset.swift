// EncdRuleset: the table encd installs (`table inet encd`), built from its settings.
// Rules/encd.nft is `EncdRuleset.table(.init()).text`; a unit test keeps them equal.
//
// Chains and priorities (OpenBSD order: UL/R -> [X] -> PF/NAT(enc0) -> IPsec -> PF/NAT(IF)):
//   spd_output     route/output      -170  [X] for local traffic: after conntrack (-200),
//                                           before mangle (-150), dstnat (-100), filter (0)
//   require_in     filter/prerouting  -95  inbound cleartext that require flows forbid:
//                                           after dstnat (-100), before [X]; drops by
//                                           address pair, or asks encd (cleartext queue)
//                                           where a protocol or ports decide
//   spd_forward    filter/prerouting  -90  [X] for forwarded traffic: after dstnat (-100),
//                                           before the routing decision the mark steers
//   IPv6 neighbor discovery (hop limit 255) is never queued nor dropped as cleartext:
//   protected, it would come back out of enc0, where ND does not accept it.
//   useFailOpen (ipsec.use_fail_open): `use` pairs (flows_use4/6) are queued to [X] with
//   bypass, so with encd gone they pass in cleartext; every other queue drops then.
//   icmpAcceptClear (ipsec.icmp_accept_clear): require_in lets cleartext ICMP errors in.
//   ipsec_output   filter/postrouting 110  after srcnat (100): counts what goes into enc0
//                                           (cleartext after NAT on enc0), which encd reads
//                                           from the TAP; leak guard
//   table netdev encd_enc0, chain mark_to_mac at enc0's egress hook: the packet's mark
//   written into the frame's destination MAC (NftEgressTable), so encd's read of enc0
//   learns [X]'s answer
//   ipsec_input_udp filter/prerouting -92  ESP in UDP for this host handed to encd's UDP
//                                           socket (tproxy, after dstnat), dropped when
//                                           there is none
//   ipsec_input    filter/input        10  after the admin's input filter (0): ESP, AH
//                                           and ESP in UDP counted (encd's sockets take
//                                           them after every input hook), NAT-T
//                                           keepalives dropped
//   ipsec_unreachable filter/output     0  the kernel's "protocol unreachable" for ESP/AH
//                                           while encd is not running: not sent
//   spd_save_output  filter/output   -169  right after [X]: its decision saved for the
//   spd_save_forward filter/prerouting -89  connection (see below)
//
// Deciding once per connection (issue #9): [X]'s answer for a packet (encd's bits of
// the mark) is kept per connection and direction in a map from the conntrack id
// (conn_original / conn_reply), filled from the packet path right after [X]. Later
// packets of that connection in that direction get the answer back in the kernel,
// without a queue trip, when their mark is still 0 (a packet carrying a mark of the
// administrator's, or of a socket's, goes to [X] as before, so no bit of theirs is
// lost). An entry is written once and never changed: encd flushes both maps with
// every change of flows or SAs (in the transaction that changes the sets, and once
// more after the [X] worker finished the packets it had decided with the old policy),
// so no answer outlives the policy it was made with; an idle connection's entry goes
// after the map's timeout. Packets out of enc0 (the inbound check) and related packets
// (ICMP errors: other addresses than their connection) are never cached. The
// conntrack mark stays the administrator's.

import EncCore

public struct EncdRulesetConfig: Sendable, Equatable {
    public var table = "encd"
    public var interface = "enc0"
    public var marks = MarkLayout.default
    /// [X] queue (spd_output and spd_forward), the number encstat gives the outbound
    /// IPsec stage (it reads enc0, no queue), the one it gives the inbound IPsec stage
    /// (it reads sockets, no queue), inbound cleartext check (require_in, where a
    /// protocol or ports decide).
    public var spdQueue: UInt16 = 0
    public var outputQueue: UInt16 = 1
    public var inputQueue: UInt16 = 2
    public var cleartextQueue: UInt16 = 3
    /// Queues per stage (fanout over consecutive numbers) for parallel workers.
    public var queuesPerStage: UInt16 = 1
    /// NAT-T port.
    public var natTraversalPort: UInt16 = 4500
    /// The port of encd's UDP sockets for ESP in UDP (SocketInputQueue: the kernel
    /// chooses it when encd starts), where ipsec_input_udp sends ESP in UDP for this
    /// host. 0 (no socket) leaves it to the NAT-T port's own socket, which is never
    /// transparent, so the chain drops it.
    public var natTraversalSocketPort: UInt16 = 0
    /// ipsec.use_fail_open: the flows_use4/6 sets and, in [X], a queue rule with bypass
    /// for their pairs (traffic of `use` flows passes in cleartext while encd is not running).
    public var useFailOpen = false
    /// ipsec.icmp_accept_clear: require_in returns for inbound cleartext ICMP errors
    /// (ICMPv4 3, 11, 12; ICMPv6 1-4) before its drops (illumos icmp_accept_clear_messages).
    public var icmpAcceptClear = true
    /// Decide once per connection: [X]'s answers kept in the conntrack mark (see above).
    public var connectionCache = true

    public init() {}
}

public enum EncdRuleset {
    public static let spdOutputPriority: Int32 = -170
    public static let spdForwardPriority: Int32 = -90
    public static let requireInPriority: Int32 = -95
    public static let ipsecInputUDPPriority: Int32 = -92
    public static let ipsecOutputPriority: Int32 = 110
    public static let ipsecInputPriority: Int32 = 10
    public static let ipsecUnreachablePriority: Int32 = 0
    public static let requireSet4 = "require_in4"
    public static let requireSet6 = "require_in6"
    public static let checkSet4 = "require_check4"
    public static let checkSet6 = "require_check6"
    public static let flowSet4 = "flows_out4"
    public static let flowSet6 = "flows_out6"
    public static let useSet4 = "flows_use4"
    public static let useSet6 = "flows_use6"
    public static let cacheOriginal = "conn_original"
    public static let cacheReply = "conn_reply"
    public static let cacheInboundOriginal = "conn_checked_original"
    public static let cacheInboundReply = "conn_checked_reply"
    public static let saveOutputPriority: Int32 = spdOutputPriority + 1
    public static let saveForwardPriority: Int32 = spdForwardPriority + 1

    /// The connection caches (none when `connectionCache` is off).
    public static func caches(_ c: EncdRulesetConfig) -> [NftCacheSet] {
        guard c.connectionCache else { return [] }
        return [NftCacheSet(cacheOriginal, comment: "[X]'s answer (encd's bits of the mark) per connection, original direction.\nFilled from the packet path; flushed by encd whenever flows or SAs change."),
                NftCacheSet(cacheReply, comment: "The same for the reply direction."),
                NftCacheSet(cacheInboundOriginal, key: .connectionAndSource,
                            comment: "The inbound check's and [X]'s answer for packets out of enc0, per connection and SA (the frame's\nsource MAC names the SA that carried it): another SA's packets of the same connection meet the check."),
                NftCacheSet(cacheInboundReply, key: .connectionAndSource, comment: "The same for the reply direction.")]
    }

    /// For packets out of enc0: the answer kept for the connection and the SA that
    /// carried the packet, accepted at once; any other packet from enc0 goes on to the
    /// check. A mark set before (by anyone) never skips it: only a packet with mark 0
    /// is looked up, and only a hit accepts.
    static func restoreChecked(_ c: EncdRulesetConfig) -> [NftRule] {
        guard c.connectionCache else { return [] }
        let fromEnc = NftMatch.iifname(.eq, c.interface)
        return [
            NftRule([fromEnc, .mark(mask: .max, .eq, 0), .ctStateNewOrEstablished, .ctDirection(.original)],
                    [.restoreDecision(map: cacheInboundOriginal, key: .connectionAndSource), .verdict(.accept)],
                    comment: "checked for this connection and SA already"),
            NftRule([fromEnc, .mark(mask: .max, .eq, 0), .ctStateNewOrEstablished, .ctDirection(.reply)],
                    [.restoreDecision(map: cacheInboundReply, key: .connectionAndSource), .verdict(.accept)]),
        ]
    }

    /// [X]'s cached answers: restored for a packet with no mark yet, then accepted
    /// like any decided packet.
    static func restoreDecision(_ c: EncdRulesetConfig) -> [NftRule] {
        guard c.connectionCache else { return [] }
        return [
            NftRule([.mark(mask: .max, .eq, 0), .ctStateNewOrEstablished, .ctDirection(.original)], [.restoreDecision(map: cacheOriginal, key: .connection)],
                    comment: "decided for this connection already"),
            NftRule([.mark(mask: .max, .eq, 0), .ctStateNewOrEstablished, .ctDirection(.reply)], [.restoreDecision(map: cacheReply, key: .connection)]),
            NftRule([.mark(mask: c.marks.bypass, .eq, c.marks.bypass)], [.verdict(.accept)]),
        ]
    }

    /// [X]'s answer kept for the packet's connection and direction.
    static func saveDecision(_ c: EncdRulesetConfig, inbound: Bool = false) -> [NftRule] {
        let decided = NftMatch.mark(mask: c.marks.bypass, .eq, c.marks.bypass)
        let from: [NftMatch] = inbound ? [.iifname(.eq, c.interface)] : []
        let key: NftCacheKey = inbound ? .connectionAndSource : .connection
        return [
            NftRule(from + [decided, .ctStateNewOrEstablished, .ctDirection(.original)],
                    [.saveDecision(map: inbound ? cacheInboundOriginal : cacheOriginal, key: key, mask: c.marks.mask)]),
            NftRule(from + [decided, .ctStateNewOrEstablished, .ctDirection(.reply)],
                    [.saveDecision(map: inbound ? cacheInboundReply : cacheReply, key: key, mask: c.marks.mask)]),
        ]
    }

    static func saveChains(_ c: EncdRulesetConfig) -> [NftChain] {
        guard c.connectionCache else { return [] }
        return [
            NftChain("spd_save_output", base: NftBaseChain(type: "filter", hook: .output, priority: saveOutputPriority),
                     comment: "[X]'s answer for a local packet, kept for its connection.\nencd's own ESP and AH (sent with BYPASS) are not [X]'s answers.",
                     rules: [NftRule([.l4proto(.eq, 50)], [.verdict(.return)]), NftRule([.l4proto(.eq, 51)], [.verdict(.return)]),
                             NftRule([.udpSport(c.natTraversalPort)], [.verdict(.return)])] + saveDecision(c)),
            NftChain("spd_save_forward", base: NftBaseChain(type: "filter", hook: .prerouting, priority: saveForwardPriority),
                     comment: "[X]'s answer for a forwarded packet, kept for its connection; for a packet out of enc0, the\ninbound check's and [X]'s, kept for its connection and the SA that carried it.",
                     rules: saveDecision(c, inbound: true) + [NftRule([.iifname(.eq, c.interface)], [.verdict(.return)])] + saveDecision(c)),
        ]
    }

    /// ICMP error types that ipsec.icmp_accept_clear lets in as cleartext: ICMPv4
    /// destination unreachable (3), time exceeded (11), parameter problem (12) (RFC 792);
    /// ICMPv6 destination unreachable (1), packet too big (2), time exceeded (3),
    /// parameter problem (4) (RFC 4443).
    public static let icmpErrors: [NftMatch] = [.icmpType(.inet, 3...3), .icmpType(.inet, 11...12), .icmpType(.inet6, 1...4)]

    /// [X]'s queue rules: with useFailOpen, `use` pairs first, queued with bypass.
    static func spdLookup(_ c: EncdRulesetConfig) -> [NftRule] {
        let n = c.spdQueue, q = c.queuesPerStage
        var rules: [NftRule] = []
        if c.useFailOpen {
            rules += [
                NftRule([.addressPair(.inet, set: useSet4)], [.counter, .queueFailOpen(number: n, total: q)],
                        comment: "use flows: SPD lookup; in cleartext while encd is not running"),
                NftRule([.addressPair(.inet6, set: useSet6)], [.counter, .queueFailOpen(number: n, total: q)],
                        comment: "use flows: SPD lookup; in cleartext while encd is not running"),
            ]
        }
        return rules + [
            NftRule([.addressPair(.inet, set: flowSet4)], [.counter, .queue(number: n, total: q)], comment: "SPD lookup"),
            NftRule([.addressPair(.inet6, set: flowSet6)], [.counter, .queue(number: n, total: q)], comment: "SPD lookup"),
        ]
    }

    static func sets(_ c: EncdRulesetConfig) -> [NftAddressPairSet] {
        var sets = [
            NftAddressPairSet(flowSet4, family: .inet, comment: "Outbound flows (source . destination): only packets a flow may match go to [X]."),
            NftAddressPairSet(flowSet6, family: .inet6),
        ]
        if c.useFailOpen {
            sets += [
                NftAddressPairSet(useSet4, family: .inet, comment: "Outbound use flows that no other flow can override (ipsec.use_fail_open): queued with bypass."),
                NftAddressPairSet(useSet6, family: .inet6),
            ]
        }
        return sets + [
            NftAddressPairSet(requireSet4, family: .inet, comment: "Inbound require flows (source . destination): cleartext matching them is dropped."),
            NftAddressPairSet(requireSet6, family: .inet6),
            NftAddressPairSet(checkSet4, family: .inet, comment: "Inbound pairs where a flow naming a protocol or ports decides: encd judges each cleartext packet."),
            NftAddressPairSet(checkSet6, family: .inet6),
        ]
    }

    /// enc0's egress table: named after encd's table and the interface.
    public static func egressTable(_ c: EncdRulesetConfig) -> NftEgressTable {
        NftEgressTable(name: "\(c.table)_\(c.interface)", device: c.interface)
    }

    public static func table(_ c: EncdRulesetConfig) -> NftTable {
        let m = c.marks
        let q = c.queuesPerStage
        let bypassed = NftMatch.mark(mask: m.bypass, .eq, m.bypass)
        return NftTable(name: c.table, header: [
            "encd's nftables table, as encd installs it (with the default settings).",
            "Generated from Sources/Kernel/Rules/EncdRuleset.swift; a unit test keeps them equal.",
            "Kernels without nf_tables' queue expression get xt NFQUEUE (nft_compat) instead.",
            "Marks: encd owns \(NftRule.hex(m.mask)): BYPASS \(NftRule.hex(m.bypass)), PROTECT \(NftRule.hex(m.protect)), POLICY \(NftRule.hex(m.policyMask)). See Rules/README.md.",
        ], sets: sets(c), caches: caches(c), chains: [
            NftChain("spd_output", base: NftBaseChain(type: "route", hook: .output, priority: spdOutputPriority),
                     comment: "[X] for locally generated packets. A verdict that changes the mark re-routes the packet.",
                     rules: [
                NftRule([bypassed], [.verdict(.accept)], comment: "decided, or sent by encd (SO_MARK)"),
                NftRule([.oifname(.eq, "lo")], [.verdict(.accept)]),
                NftRule([.neighborDiscovery], [.verdict(.accept)], comment: "stays on the link, never IPsec (see Rules/README.md)"),
            ] + restoreDecision(c) + spdLookup(c)),
            NftChain("spd_forward", base: NftBaseChain(type: "filter", hook: .prerouting, priority: spdForwardPriority),
                     comment: "[X] for forwarded packets, after dstnat; the mark then steers the routing decision.",
                     // First, whatever the mark says: a mark set by any rule before this one
                     // must not let a decrypted packet skip the check (restoreChecked
                     // accepts only on a hit in its map, for packets with mark 0).
                     rules: restoreChecked(c) + [
                NftRule([.iifname(.eq, c.interface)], [.counter, .queue(number: c.spdQueue, total: q)],
                        comment: "decrypted by encd: inbound policy check after NAT on enc0, then [X]"),
                NftRule([bypassed], [.verdict(.accept)]),
                NftRule([.neighborDiscovery], [.verdict(.accept)]),
                NftRule([.fibDaddrLocal], [.verdict(.accept)], comment: "for this host: input, not [X]"),
            ] + restoreDecision(c) + spdLookup(c)),
            NftChain("require_in", base: NftBaseChain(type: "filter", hook: .prerouting, priority: requireInPriority),
                     comment: "Cleartext that an inbound require flow covers must arrive through enc0.\nWhere a flow naming a protocol or ports decides, encd judges (dropped while encd is not running).",
                     rules: [
                NftRule([.iifname(.eq, c.interface)], [.verdict(.return)]),
                // IPsec for this host is not cleartext (encd takes it at input); the same
                // protocols on their way to a protected host are judged like any packet.
                // The protocol first: nft stops at a rule's first mismatch, so other
                // traffic (every forwarded cleartext packet) costs no FIB lookup here.
                NftRule([.l4proto(.eq, 50), .fibDaddrLocal], [.verdict(.return)], comment: "ESP for this host"),
                NftRule([.l4proto(.eq, 51), .fibDaddrLocal], [.verdict(.return)], comment: "AH for this host"),
                NftRule([.udpDport(c.natTraversalPort), .fibDaddrLocal], [.verdict(.return)], comment: "NAT-T for this host"),
                NftRule([.neighborDiscovery], [.verdict(.return)], comment: "neighbor discovery from the link itself"),
            ] + (c.icmpAcceptClear ? icmpErrors.map {
                NftRule([$0], [.verdict(.return)], comment: "ICMP error (ipsec.icmp_accept_clear): path MTU discovery, traceroute")
            } : []) + [
                NftRule([.addressPair(.inet, set: requireSet4)], [.counter, .verdict(.drop)]),
                NftRule([.addressPair(.inet6, set: requireSet6)], [.counter, .verdict(.drop)]),
                NftRule([.addressPair(.inet, set: checkSet4)], [.counter, .queue(number: c.cleartextQueue, total: q)]),
                NftRule([.addressPair(.inet6, set: checkSet6)], [.counter, .queue(number: c.cleartextQueue, total: q)]),
            ]),
            NftChain("ipsec_output", base: NftBaseChain(type: "filter", hook: .postrouting, priority: ipsecOutputPriority),
                     comment: "IPsec, outbound: after srcnat, what routing sent to \(c.interface) goes on to it, where encd reads it;\nthe mark says which policy matched at [X] (egress table \(c.table)_\(c.interface) copies it into the frame).",
                     rules: [
                // The kernel's own link-local multicast (MLD reports when enc0 comes up or
                // changes) is never IPsec and has no SA: not queued, counted here.
                NftRule([.oifname(.eq, c.interface), .ip6LinkLocalMulticast], [.counter, .verdict(.drop)],
                        comment: "the kernel's own link-local multicast (MLD)"),
                NftRule([.oifname(.eq, c.interface)], [.counter, .verdict(.accept)],
                        comment: "encd reads it from \(c.interface); the mark goes in the frame's destination MAC"),
                NftRule([.mark(mask: m.protect, .eq, m.protect), .oifname(.neq, c.interface)], [.counter, .verdict(.drop)],
                        comment: "leak guard"),
            ]),
            NftChain("ipsec_input_udp", base: NftBaseChain(type: "filter", hook: .prerouting, priority: ipsecInputUDPPriority),
                     comment: "ESP in UDP for this host (a non-zero first word on UDP \(c.natTraversalPort)) goes to encd's socket, on a port the\nkernel chose when encd started (tproxy: the packet is not changed, and every input hook still sees it).\nWithout that socket (encd not running) it is dropped. IKE and keepalives go on to the IKE daemon's socket.",
                     rules: [
                NftRule(espInUDPForThisHost(c), [.tproxy(port: c.natTraversalSocketPort), .verdict(.accept)], comment: "to encd's socket"),
                NftRule(espInUDPForThisHost(c), [.counter, .verdict(.drop)], comment: "no encd socket"),
            ]),
            NftChain("ipsec_input", base: NftBaseChain(type: "filter", hook: .input, priority: ipsecInputPriority),
                     comment: "IPsec, inbound: after the admin's input filter. A zero first word on UDP \(c.natTraversalPort) is IKE.",
                     rules: [
                NftRule([.l4proto(.eq, 50)], [.counter, .verdict(.accept)], comment: "to encd's raw socket, after every input hook"),
                NftRule([.l4proto(.eq, 51)], [.counter, .verdict(.accept)], comment: "to encd's raw socket, after every input hook"),
                NftRule([.udpDport(c.natTraversalPort), .transportBits(offset: 64, bits: 32, .neq, 0)],
                        [.counter, .verdict(.accept)], comment: "ESP in UDP: to encd's socket (ipsec_input_udp), after every input hook"),
                NftRule([.udpDport(c.natTraversalPort), .udpLength(9), .transportBits(offset: 64, bits: 8, .eq, 0xff)],
                        [.counter, .verdict(.drop)], comment: "NAT-T keepalive"),
            ]),
            NftChain("ipsec_unreachable", base: NftBaseChain(type: "filter", hook: .output, priority: ipsecUnreachablePriority),
                     comment: "While encd is not running, no raw socket takes ESP and AH: the kernel drops them, as encd's queues did,\nbut would also answer the peer that the protocol is unknown. Not sent.",
                     rules: unreachableAnswers.map { NftRule($0, [.counter, .verdict(.drop)]) }),
        ] + saveChains(c))
    }

    /// ESP in UDP for this host: to the NAT-T port, a first word that is not IKE's zero
    /// marker (a shorter datagram does not match), to a local address.
    static func espInUDPForThisHost(_ c: EncdRulesetConfig) -> [NftMatch] {
        [.udpDport(c.natTraversalPort), .transportBits(offset: 64, bits: 32, .neq, 0), .fibDaddrLocal]
    }

    /// The kernel's answers to ESP or AH that no socket took: ICMP protocol unreachable
    /// (the quoted header's protocol at byte 9), ICMPv6 parameter problem "unrecognized
    /// next header" pointing at the fixed header's next-header field (byte 6).
    static let unreachableAnswers: [[NftMatch]] = [IPProtocol.esp, IPProtocol.ah].flatMap { proto -> [[NftMatch]] in
        [[.icmpType(.inet, 3...3), .transportBits(offset: 8, bits: 8, .eq, 2),
          .transportBits(offset: (8 + 9) * 8, bits: 8, .eq, UInt32(proto))],
         [.icmpType(.inet6, 4...4), .transportBits(offset: 8, bits: 8, .eq, 1), .transportBits(offset: 32, bits: 32, .eq, 6),
          .transportBits(offset: (8 + 6) * 8, bits: 8, .eq, UInt32(proto))]]
    }
}
