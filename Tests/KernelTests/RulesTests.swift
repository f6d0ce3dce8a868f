import Glibc
import Testing
import EncCore
@testable import Kernel

@Suite struct RulesTests {
    @Test func markLayoutSplitsTheOwnedMask() throws {
        let m = MarkLayout.default
        #expect(m.mask == 0x0fff_0000 && m.bypass == 0x1_0000 && m.protect == 0x2_0000)
        #expect(m.policyMask == 0x0ffc_0000 && m.maxPolicy == 1022)
        #expect(m.inbound == 0x0ffd_0000 && m.policy(of: m.inboundMark(keeping: 0)) == nil)
        #expect(m.inboundMark(keeping: 0xf000_00ff) == 0xfffd_00ff)
        let mark = try #require(m.protectMark(policy: 5, keeping: 0xf000_00ff))
        #expect(mark == 0xf000_00ff | 0x1_0000 | 0x2_0000 | (5 << 18))
        #expect(m.policy(of: mark) == 5)
        #expect(m.policy(of: m.bypassMark(keeping: 0)) == nil)
        #expect(m.protectMark(policy: 1024, keeping: 0) == nil)
        #expect(m.bypassMark(keeping: 0xffff_ffff) == 0xf001_ffff)
    }

    @Test func markLayoutRejectsSplitOrTinyMasks() {
        #expect(throws: KernelConfigError.self) { try MarkLayout(mask: 0x0f0f_0000) }
        #expect(throws: KernelConfigError.self) { try MarkLayout(mask: 0x3) }
        #expect(throws: KernelConfigError.self) { try MarkLayout(mask: 0) }
        #expect((try? MarkLayout(mask: 0xe000_0000))?.bypass == 0x2000_0000)
    }

    @Test func ruleTextReadsLikeNft() {
        let r = NftRule([.mark(mask: 0x2_0000, .eq, 0x2_0000), .oifname(.neq, "enc0")], [.counter, .verdict(.drop)])
        #expect(r.text == "meta mark & 0x00020000 == 0x00020000 oifname != \"enc0\" counter drop")
        let q = NftRule([.udpDport(4500), .transportBits(offset: 64, bits: 32, .neq, 0)], [.queue(number: 2, total: 4)])
        #expect(q.text == "udp dport 4500 @th,64,32 != 0 queue num 2-5 fanout")
        #expect(NftRule([.addressPair(.inet6, set: "s")], [.setMark(mask: 0xff, value: 1)]).text
                == "ip6 saddr . ip6 daddr @s meta mark set meta mark & 0xffffff00 | 0x00000001")
    }

    @Test func udpPortLowersWithItsProtocolDependency() {
        let e = NftRule([.udpDport(4500)], [.verdict(.accept)]).expressions(queue: .native)
        #expect(e == [
            .meta(key: 16, dreg: .r1),  // NFT_META_L4PROTO
            .cmp(sreg: .r1, op: 0, data: [17]),
            .payload(base: 2, offset: 2, length: 2, dreg: .r1),  // transport header, dport
            .cmp(sreg: .r1, op: 0, data: [0x11, 0x94]),  // 4500 big endian
            .verdict(.accept),
        ])
    }

    @Test func markMatchUsesHostOrderAndBitwise() {
        let e = NftRule([.mark(mask: 0x1_0000, .eq, 0x1_0000)], []).expressions(queue: .native)
        #expect(e == [
            .meta(key: 3, dreg: .r1),  // NFT_META_MARK
            .bitwise(sreg: .r1, dreg: .r1, mask: NftBytes.host32(0x1_0000), xor: [0, 0, 0, 0]),
            .cmp(sreg: .r1, op: 0, data: NftBytes.host32(0x1_0000)),
        ])
    }

    @Test func queueLowersToNativeOrXtCompat() {
        let rule = NftRule([], [.queue(number: 3, total: 1)])
        #expect(rule.expressions(queue: .native) == [.queue(number: 3, total: 1, flags: 0)])
        // struct xt_NFQ_info_v3 {queuenum 3, queues_total 1, flags 0}, host order, padded to 8.
        #expect(rule.expressions(queue: .xtCompat) == [.xtTarget(name: "NFQUEUE", revision: 3, info: [3, 0, 1, 0, 0, 0, 0, 0])])
    }

    @Test func failOpenQueueCarriesTheBypassFlagOnBothBackends() {
        let rule = NftRule([], [.queueFailOpen(number: 3, total: 1)])
        #expect(rule.text == "queue num 3 bypass")
        #expect(rule.expressions(queue: .native) == [.queue(number: 3, total: 1, flags: 1)])   // NFT_QUEUE_FLAG_BYPASS
        // struct xt_NFQ_info_v3 {queuenum 3, queues_total 1, flags NFQ_FLAG_BYPASS (1)}, host order, padded to 8.
        #expect(rule.expressions(queue: .xtCompat) == [.xtTarget(name: "NFQUEUE", revision: 3, info: [3, 0, 1, 0, 1, 0, 0, 0])])
        let fanout = NftRule([], [.queueFailOpen(number: 0, total: 2)])
        #expect(fanout.text == "queue num 0-1 bypass,fanout")
        #expect(fanout.expressions(queue: .native) == [.queue(number: 0, total: 2, flags: 3)])  // BYPASS | CPU_FANOUT
        #expect(fanout.expressions(queue: .xtCompat) == [.xtTarget(name: "NFQUEUE", revision: 3, info: [0, 0, 2, 0, 3, 0, 0, 0])])
        // The plain queue never bypasses.
        #expect(NftRule([], [.queue(number: 0, total: 2)]).expressions(queue: .native) == [.queue(number: 0, total: 2, flags: 2)])
    }

    @Test func useFailOpenQueuesUsePairsWithBypassBeforeTheFlowRules() throws {
        var c = EncdRulesetConfig()
        #expect(!c.useFailOpen)
        let off = EncdRuleset.table(c)
        #expect(!off.text.contains("bypass") && !off.text.contains("flows_use"))
        c.useFailOpen = true
        let on = EncdRuleset.table(c)
        #expect(on.sets.map(\.name) == ["flows_out4", "flows_out6", "flows_use4", "flows_use6", "require_in4", "require_in6", "require_check4", "require_check6"])
        for name in ["spd_output", "spd_forward"] {
            let rules = try #require(on.chains.first { $0.name == name }).rules.map(\.text)
            let use4 = try #require(rules.firstIndex(of: "ip saddr . ip daddr @flows_use4 counter queue num 0 bypass"))
            let use6 = try #require(rules.firstIndex(of: "ip6 saddr . ip6 daddr @flows_use6 counter queue num 0 bypass"))
            let out4 = try #require(rules.firstIndex(of: "ip saddr . ip daddr @flows_out4 counter queue num 0"))
            #expect(use4 < out4 && use6 < out4, "\(name)")
            #expect(rules.filter { $0.contains("bypass") }.count == 2, "\(name)")
        }
        // No other chain changes: IPsec queues and the enc0 rule stay fail-closed.
        for (a, b) in zip(off.chains, on.chains) where a.name != "spd_output" && a.name != "spd_forward" {
            #expect(a == b)
        }
        let forward = try #require(on.chains.first { $0.name == "spd_forward" })
        let enc0 = try #require(forward.rules.first { $0.text.hasPrefix("iifname \"enc0\" counter queue") })
        #expect(enc0.expressions(queue: .xtCompat).last == .xtTarget(name: "NFQUEUE", revision: 3, info: [0, 0, 1, 0, 0, 0, 0, 0]))
        let use = try #require(forward.rules.first { $0.text.contains("@flows_use4") })
        #expect(use.expressions(queue: .xtCompat).suffix(2) == [.counter, .xtTarget(name: "NFQUEUE", revision: 3, info: [0, 0, 1, 0, 1, 0, 0, 0])])
        #expect(use.expressions(queue: .native).last == .queue(number: 0, total: 1, flags: 1))
    }

    @Test func icmpAcceptClearReturnsICMPErrorsBeforeTheRequireDrops() throws {
        var c = EncdRulesetConfig()
        #expect(c.icmpAcceptClear)
        let on = try #require(EncdRuleset.table(c).chains.first { $0.name == "require_in" }).rules.map(\.text)
        let errors = ["icmp type 3 return", "icmp type 11-12 return", "icmpv6 type 1-4 return"]
        let drop = try #require(on.firstIndex(of: "ip saddr . ip daddr @require_in4 counter drop"))
        for e in errors {
            let i = try #require(on.firstIndex(of: e))
            #expect(i < drop)
        }
        c.icmpAcceptClear = false
        let off = try #require(EncdRuleset.table(c).chains.first { $0.name == "require_in" }).rules.map(\.text)
        #expect(off == on.filter { !errors.contains($0) })
        #expect(!off.contains { $0.hasPrefix("icmp") })
    }

    @Test func icmpTypeLowersWithFamilyAndProtocolDependencies() {
        #expect(NftRule([.icmpType(.inet, 3...3)], [.verdict(.return)]).expressions(queue: .native) == [
            .meta(key: 15, dreg: .r1), .cmp(sreg: .r1, op: 0, data: [2]),       // meta nfproto ipv4
            .meta(key: 16, dreg: .r1), .cmp(sreg: .r1, op: 0, data: [1]),       // meta l4proto icmp
            .payload(base: 2, offset: 0, length: 1, dreg: .r1),                 // ICMP type
            .cmp(sreg: .r1, op: 0, data: [3]),
            .verdict(.return),
        ])
        #expect(NftRule([.icmpType(.inet, 11...12)], []).expressions(queue: .native).suffix(2) == [
            .cmp(sreg: .r1, op: 5, data: [11]), .cmp(sreg: .r1, op: 3, data: [12]),   // NFT_CMP_GTE, NFT_CMP_LTE
        ])
        #expect(NftRule([.icmpType(.inet6, 1...4)], []).expressions(queue: .native) == [
            .meta(key: 15, dreg: .r1), .cmp(sreg: .r1, op: 0, data: [10]),      // meta nfproto ipv6
            .meta(key: 16, dreg: .r1), .cmp(sreg: .r1, op: 0, data: [58]),      // meta l4proto ipv6-icmp
            .payload(base: 2, offset: 0, length: 1, dreg: .r1),
            .cmp(sreg: .r1, op: 5, data: [1]), .cmp(sreg: .r1, op: 3, data: [4]),
        ])
    }

    @Test func addressPairLoadsConcatenationRegisters() {
        let e = NftRule([.addressPair(.inet, set: "require_in4")], []).expressions(queue: .native)
        #expect(e == [
            .meta(key: 15, dreg: .r1), .cmp(sreg: .r1, op: 0, data: [2]),  // meta nfproto ipv4
            .payload(base: 1, offset: 12, length: 4, dreg: .r1),
            .payload(base: 1, offset: 16, length: 4, dreg: .r32_01),
            .lookup(set: "require_in4", sreg: .r1, dreg: nil),
        ])
    }

    @Test func neighborDiscoveryMatchesOnlyOnLinkICMPv6Types133To137() {
        let r = NftRule([.neighborDiscovery], [.verdict(.accept)])
        #expect(r.text == "ip6 hoplimit 255 icmpv6 type 133-137 accept")
        #expect(r.expressions(queue: .native) == [
            .meta(key: 15, dreg: .r1), .cmp(sreg: .r1, op: 0, data: [10]),       // meta nfproto ipv6
            .payload(base: 1, offset: 7, length: 1, dreg: .r1),                  // IPv6 hop limit
            .cmp(sreg: .r1, op: 0, data: [255]),
            .meta(key: 16, dreg: .r1), .cmp(sreg: .r1, op: 0, data: [58]),       // meta l4proto ipv6-icmp
            .payload(base: 2, offset: 0, length: 1, dreg: .r1),                  // ICMPv6 type
            .cmp(sreg: .r1, op: 5, data: [133]),                                 // NFT_CMP_GTE
            .cmp(sreg: .r1, op: 3, data: [137]),                                 // NFT_CMP_LTE
            .verdict(.accept),
        ])
    }

    @Test func rulesFileMatchesTheBuilder() throws {
        let path = String(#filePath).split(separator: "/").dropLast(3).joined(separator: "/")
        let file = "/" + path + "/Rules/encd.nft"
        let text = EncdRuleset.table(EncdRulesetConfig()).text
        if getenv("ENCD_UPDATE_RULES") != nil {
            let f = fopen(file, "w")
            fputs(text, f)
            fclose(f)
        }
        let onDisk = try ProcFile.read(file)
        #expect(onDisk == text, "Rules/encd.nft differs from EncdRuleset; run with ENCD_UPDATE_RULES=1 to regenerate")
    }

    @Test func batchNamesEveryMessageAndWrapsThemInBeginEnd() {
        var batch = NftBatch(firstSeq: 100)
        let table = EncdRuleset.table(EncdRulesetConfig())
        batch.replaceTable(table, queue: .xtCompat)
        batch.finish()
        let ruleCount = table.chains.reduce(0) { $0 + $1.rules.count }
        // add, delete, add table + sets + caches + chains + rules
        #expect(batch.acked.count == 3 + table.sets.count + table.caches.count + table.chains.count + ruleCount)
        #expect(batch.unacked.values.sorted() == ["batch begin", "batch end"])
        // NFNL_MSG_BATCH_BEGIN (0x10), res_id NFNL_SUBSYS_NFTABLES (10) big endian
        #expect(batch.bytes[4] == 0x10 && batch.bytes[18] == 0 && batch.bytes[19] == 10)
        #expect(batch.acked[104]?.hasPrefix("add set inet encd flows_out4") == true)
        #expect(batch.acked[106]?.hasPrefix("add set inet encd require_in4") == true)
        #expect(batch.acked.values.contains("add rule inet encd ipsec_output oifname \"enc0\" counter accept"))
    }

    /// enc0's egress table: replaced in one transaction, one chain at the device's
    /// egress hook, the rule that copies the mark into the destination MAC.
    @Test func egressTableBatch() {
        var batch = NftBatch(firstSeq: 1)
        let table = EncdRuleset.egressTable(EncdRulesetConfig())
        batch.replaceEgressTable(table, flags: NftTableFlags.owner)
        batch.finish()
        #expect(batch.acked.keys.sorted().map { batch.acked[$0]! } == [
            "add table netdev encd_enc0 (placeholder for the delete)", "delete table netdev encd_enc0", "add table netdev encd_enc0",
            "add chain netdev encd_enc0 mark_to_mac { type filter hook egress device \"enc0\" priority 0; }",
            "add rule netdev encd_enc0 mark_to_mac @ll,16,32 set meta mark",
        ])
        // Every message of the table is for family netdev (NFPROTO_NETDEV 5): nfgenmsg
        // follows each 16-byte netlink header.
        var at = 0, families: [UInt8] = []
        while at + 20 <= batch.bytes.count {
            let len = Int(batch.bytes[at]) | Int(batch.bytes[at + 1]) << 8
            if batch.bytes[at + 5] == 10 { families.append(batch.bytes[at + 16]) }   // NFNL_SUBSYS_NFTABLES messages
            at += (len + 3) & ~3
        }
        #expect(families == [5, 5, 5, 5, 5])
        #expect(table.text.contains("type filter hook egress device \"enc0\" priority 0; policy accept;"))
    }

    @Test func replacingTheTableFillsItsSetsBeforeAnyRuleInTheSameBatch() {
        // A crashed encd's table is replaced by one whose [X] sets are never empty:
        // with the elements in a later transaction, protected traffic left in cleartext.
        var batch = NftBatch(firstSeq: 100)
        let table = EncdRuleset.table(EncdRulesetConfig())
        let flows = NftAddressPairSet(EncdRuleset.flowSet4, family: .inet)
        let require = NftAddressPairSet(EncdRuleset.requireSet4, family: .inet)
        batch.replaceTable(table, queue: .xtCompat, contents: [
            NftSetContents(flows, [(IPPrefix("198.18.1.0/24")!, IPPrefix("198.18.2.0/24")!)]),
            NftSetContents(require, [(IPPrefix("198.18.2.0/24")!, IPPrefix("198.18.1.0/24")!)]),
            NftSetContents(NftAddressPairSet(EncdRuleset.flowSet6, family: .inet6), []),   // nothing to add
        ])
        batch.finish()
        let messages = batch.acked.sorted { $0.key < $1.key }.map(\.value)
        let ruleCount = table.chains.reduce(0) { $0 + $1.rules.count }
        #expect(messages.count == 3 + table.sets.count + table.caches.count + 2 + table.chains.count + ruleCount)
        let lastSet = messages.lastIndex { $0.hasPrefix("add set") || $0.hasPrefix("add map") }!
        let firstChain = messages.firstIndex { $0.hasPrefix("add chain") }!
        #expect(messages[lastSet + 1] == "add element inet encd flows_out4 (1 pairs)")
        #expect(messages[lastSet + 2] == "add element inet encd require_in4 (1 pairs)")
        #expect(firstChain == lastSet + 3)
        #expect(batch.unacked.values.sorted() == ["batch begin", "batch end"])
    }

    @Test func setElementRangesCoverThePrefix() {
        let p4 = IPPrefix("198.51.100.0/24")!
        #expect(NftBatch.low(p4) == [198, 51, 100, 0])
        #expect(NftBatch.high(p4) == [198, 51, 100, 255])
        #expect(NftBatch.high(IPPrefix("0.0.0.0/0")!) == [255, 255, 255, 255])
        #expect(NftBatch.high(IPPrefix("192.0.2.1")!) == [192, 0, 2, 1])
        let p6 = IPPrefix("2001:db8::/68")!
        #expect(NftBatch.high(p6) == [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        #expect(NftBatch.high(IPPrefix("2001:db8::/32")!).prefix(6) == [0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff])
    }

    @Test func fakeRulesetKeepsTablesAndSets() throws {
        let f = FakeRuleset(backend: .xtCompat)
        let table = EncdRuleset.table(EncdRulesetConfig())
        #expect(try f.install(table) == .xtCompat)
        try f.replaceElements(of: table.sets[0], table: "encd", pairs: [(IPPrefix("192.0.2.0/24")!, IPPrefix("198.51.100.1")!)])
        #expect(f.elements["encd/flows_out4"]?.count == 1)
        // Installing with contents fills the sets at once (a reinstall starts from them).
        _ = try f.install(table, contents: [NftSetContents(table.sets[1], [(.any(.inet6), .any(.inet6))])])
        #expect(f.elements["encd/flows_out4"]?.count == 0 && f.elements["encd/\(table.sets[1].name)"]?.count == 1)
        #expect(throws: SystemError.self) {
            try f.install(table, contents: [NftSetContents(NftAddressPairSet("nope", family: .inet), [])])
        }
        try f.removeTable(named: "encd")
        #expect(f.tables.isEmpty)
        #expect(throws: SystemError.self) { try f.replaceElements(of: table.sets[0], table: "encd", pairs: []) }
    }
}

@Suite struct GuardTableTests {
    /// The guard that covers a reinstall holds every chain that reads a set, with the
    /// sets, and nothing else (the IPsec queues read no set and would only queue twice).
    @Test func guardHoldsTheSetReadingChainsAndTheirSets() {
        let table = EncdRuleset.table(EncdRulesetConfig())
        let g = table.guardTable
        #expect(g.name == "encd_guard")
        #expect(g.sets == table.sets)
        #expect(g.chains.map(\.name) == ["spd_output", "spd_forward", "require_in"])
        // The same chains without the rules that read a connection cache (the guard has none).
        #expect(g.caches.isEmpty)
        for c in g.chains {
            let original = table.chains.first { $0.name == c.name }!
            #expect(c.rules == original.rules.filter { !$0.text.contains("@conn_") })
            #expect(!c.rules.contains { $0.text.contains("@conn_") })
        }
    }
}

@Suite struct ConnectionCacheRulesTests {
    /// The answer is kept as a map element (ct id -> encd's bits of the mark), read with
    /// one lookup and written once: no moment in which a packet could read half of it.
    @Test func answersAreMapElementsReadAndWrittenWhole() {
        let save = NftRule([], [.saveDecision(map: "conn_original", key: .connection, mask: 0x0fff_0000)])
        #expect(save.text == "update @conn_original { ct id : meta mark & 0x0fff0000 }")
        #expect(save.expressions(queue: .native) == [
            .ct(key: 23, dreg: .r1),    // NFT_CT_ID
            .meta(key: 3, dreg: .r2),   // NFT_META_MARK
            .bitwise(sreg: .r2, dreg: .r2, mask: NftBytes.host32(0x0fff_0000), xor: [0, 0, 0, 0]),
            .dynsetUpdate(set: "conn_original", key: .r1, data: .r2),
        ])
        let restore = NftRule([], [.restoreDecision(map: "conn_reply", key: .connection)])
        #expect(restore.text == "meta mark set ct id map @conn_reply")
        #expect(restore.expressions(queue: .native) == [
            .ct(key: 23, dreg: .r1), .lookup(set: "conn_reply", sreg: .r1, dreg: .r1), .metaSet(key: 3, sreg: .r1),
        ])
        // Keyed by connection and frame source: the MAC in the 32-bit register after the
        // id (as nft lays out `ct id . ether saddr`), only for Ethernet frames.
        let checked = NftRule([], [.restoreDecision(map: "conn_checked_original", key: .connectionAndSource)])
        #expect(checked.text == "meta mark set ct id . ether saddr map @conn_checked_original")
        #expect(checked.expressions(queue: .native) == [
            .meta(key: 8, dreg: .r1), .cmp(sreg: .r1, op: 0, data: [1, 0]),    // NFT_META_IFTYPE, ARPHRD_ETHER
            .ct(key: 23, dreg: .r1),
            .payload(base: 0, offset: 6, length: 6, dreg: .r32_01),           // link layer, source address
            .lookup(set: "conn_checked_original", sreg: .r1, dreg: .r1), .metaSet(key: 3, sreg: .r1),
        ])
        #expect(NftCacheKey.connectionAndSource.length == 12)
    }

    /// Restored answers come after the rules that let decided and local packets go
    /// and before the queue; the inbound check (enc0) is never restored nor saved;
    /// related packets (ICMP errors) never use a connection's answer.
    @Test func restoreAndSaveSitAroundXAndSkipTheInboundCheck() throws {
        let table = EncdRuleset.table(EncdRulesetConfig())
        let forward = try #require(table.chains.first { $0.name == "spd_forward" }).rules.map(\.text)
        // Packets out of enc0: the answer kept for (connection, SA) accepts, anything else
        // from enc0 is queued to the check before any rule could accept it.
        #expect(Array(forward.prefix(3)) == [
            "iifname \"enc0\" meta mark 0x00000000 ct state new,established ct direction original meta mark set ct id . ether saddr map @conn_checked_original accept",
            "iifname \"enc0\" meta mark 0x00000000 ct state new,established ct direction reply meta mark set ct id . ether saddr map @conn_checked_reply accept",
            "iifname \"enc0\" counter queue num 0",
        ])
        let restore = try #require(forward.firstIndex { $0.contains("map @conn_original") })
        let queue = try #require(forward.firstIndex { $0.contains("@flows_out4") })
        #expect(restore > 2 && restore < queue)
        #expect(forward[restore + 2] == "meta mark & 0x00010000 == 0x00010000 accept")
        // Only a packet with no mark yet gets a kept answer: an administrator's (or a
        // socket's) bits are never overwritten.
        for text in forward.dropFirst(2) where text.contains("@conn_") { #expect(text.hasPrefix("meta mark 0x00000000 ct state new,established")) }
        let save = try #require(table.chains.first { $0.name == "spd_save_forward" })
        #expect(save.base?.priority == EncdRuleset.spdForwardPriority + 1)
        #expect(save.rules.map(\.text) == [
            "iifname \"enc0\" meta mark & 0x00010000 == 0x00010000 ct state new,established ct direction original update @conn_checked_original { ct id . ether saddr : meta mark & 0x0fff0000 }",
            "iifname \"enc0\" meta mark & 0x00010000 == 0x00010000 ct state new,established ct direction reply update @conn_checked_reply { ct id . ether saddr : meta mark & 0x0fff0000 }",
            "iifname \"enc0\" return",
            "meta mark & 0x00010000 == 0x00010000 ct state new,established ct direction original update @conn_original { ct id : meta mark & 0x0fff0000 }",
            "meta mark & 0x00010000 == 0x00010000 ct state new,established ct direction reply update @conn_reply { ct id : meta mark & 0x0fff0000 }",
        ])
        let saveOut = try #require(table.chains.first { $0.name == "spd_save_output" })
        #expect(saveOut.base?.priority == EncdRuleset.spdOutputPriority + 1)
        #expect(saveOut.rules.prefix(3).map(\.text) == ["meta l4proto esp return", "meta l4proto ah return", "udp sport 4500 return"])
        for rule in saveOut.rules.filter({ $0.text.contains("update") }) {
            #expect(rule.text.hasPrefix("meta mark & 0x00010000 == 0x00010000 ct state new,established ct direction"))
            #expect(rule.text.hasSuffix("ct id : meta mark & 0x0fff0000 }"))
        }
        var off = EncdRulesetConfig()
        off.connectionCache = false
        #expect(!EncdRuleset.table(off).text.contains("ct id") && !EncdRuleset.table(off).text.contains("ct mark"))
    }

    /// A policy change empties the caches in the transaction that changes the sets.
    @Test func replacingTheSetsFlushesTheCachesInTheSameBatch() throws {
        let f = FakeRuleset(backend: .xtCompat)
        let table = EncdRuleset.table(EncdRulesetConfig())
        _ = try f.install(table)
        try f.replaceElements([NftSetContents(table.sets[0], [])], flushing: ["conn_original", "conn_reply"], table: "encd")
        #expect(f.requests.last == "replace elements inet encd flows_out4 (0); flush conn_original, conn_reply")
        #expect(throws: SystemError.self) { try f.flush(caches: ["nope"], table: "encd") }
        var batch = NftBatch(firstSeq: 1)
        batch.flushSet(named: "conn_original", table: "encd")
        batch.finish()
        #expect(batch.acked.values.contains("flush set inet encd conn_original"))
    }
}
