import EncCore
import Kernel
import Testing
@testable import Daemon

@Suite struct SetContentsTests {
    static let conf = """
        flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
        flow esp from 198.18.1.0/24 to 198.18.0.0/16 local 192.0.2.1 peer 192.0.2.2 type use
        esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm \\
            enckey 0x1111111111111111111111111111111111111111:0x2222222222222222222222222222222222222222
        """

    @Test func setsHoldTheCandidateAndRequirePairsThatStartUpInstallsWithTheTable() throws {
        let gw = try Gateway(Self.conf, local: ["192.0.2.1"])
        let contents = EncDaemon.setContents(gw.box.value.spd)
        func pairs(_ name: String) -> [String] {
            contents.first { $0.set.name == name }!.pairs.map { "\($0.0) > \($0.1)" }
        }
        #expect(contents.map(\.set.name) == [EncdRuleset.flowSet4, EncdRuleset.flowSet6, EncdRuleset.requireSet4, EncdRuleset.requireSet6,
                                              EncdRuleset.checkSet4, EncdRuleset.checkSet6])
        // The /16 flow covers the /24 one: one candidate pair (nft refuses overlaps).
        #expect(pairs(EncdRuleset.flowSet4) == ["198.18.1.0/24 > 198.18.0.0/16"])
        // Only the require flow's mirror is enforced on inbound cleartext.
        #expect(pairs(EncdRuleset.requireSet4) == ["198.18.2.0/24 > 198.18.1.0/24"])
        #expect(pairs(EncdRuleset.flowSet6).isEmpty && pairs(EncdRuleset.requireSet6).isEmpty)
        #expect(pairs(EncdRuleset.checkSet4).isEmpty && pairs(EncdRuleset.checkSet6).isEmpty)
    }

    @Test func widenedContentsQueueAllTrafficToXButKeepTheRequirePairs() throws {
        let gw = try Gateway(Self.conf, local: ["192.0.2.1"])
        let contents = EncDaemon.setContents(gw.box.value.spd)
        let wide = EncDaemon.widened(contents)
        for (c, w) in zip(contents, wide) {
            if EncDaemon.isCandidateSet(c.set) {
                #expect(w.pairs.count == 1 && w.pairs[0].0 == .any(c.set.family) && w.pairs[0].1 == .any(c.set.family))
            } else {
                #expect(w.pairs.map { "\($0.0) \($0.1)" } == c.pairs.map { "\($0.0) \($0.1)" })
            }
        }
    }

    @Test func useSetsExistOnlyWithUseFailOpenAndHoldTheUsePairsNoOtherFlowOverrides() throws {
        let conf = """
            flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
            flow esp from 198.18.1.10 to 198.18.2.20 local 192.0.2.1 peer 192.0.2.2 type use
            flow esp from 198.18.3.0/24 to 198.18.4.0/24 local 192.0.2.1 peer 192.0.2.2 type use
            flow esp from 198.18.3.7 to 198.18.4.0/24 local 192.0.2.1 peer 192.0.2.2
            flow esp from 2001:db8:1::/64 to 2001:db8:2::/64 local 192.0.2.1 peer 192.0.2.2 type use
            """
        let gw = try Gateway(conf, local: ["192.0.2.1"])
        #expect(!EncDaemon.setContents(gw.box.value.spd).contains { EncDaemon.isUseSet($0.set) })
        var rc = EncdRulesetConfig()
        rc.useFailOpen = true
        let contents = EncDaemon.setContents(gw.box.value.spd, rc)
        #expect(Set(contents.map(\.set.name)) == Set(EncdRuleset.table(rc).sets.map(\.name)))
        func pairs(_ name: String) -> [String] {
            contents.first { $0.set.name == name }!.pairs.map { "\($0.0) > \($0.1)" }
        }
        // The use host pair inside the require sites is in; the use /24 with a require host inside is not.
        #expect(pairs(EncdRuleset.useSet4) == ["198.18.1.10 > 198.18.2.20"])
        #expect(pairs(EncdRuleset.useSet6) == ["2001:db8:1::/64 > 2001:db8:2::/64"])
        // The fallback for refused pairs lets nothing fail open.
        #expect(EncDaemon.widened(contents).filter { EncDaemon.isUseSet($0.set) }.allSatisfy { $0.pairs.isEmpty })
    }
}
