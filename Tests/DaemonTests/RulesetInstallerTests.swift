import Config
import EncCore
import Kernel
import Testing
@testable import Daemon

@Suite struct RulesetInstallerTests {
    static let conf = """
        flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
        flow esp from 198.18.1.10 to 198.18.2.20 local 192.0.2.1 peer 192.0.2.2 type use
        """

    func installer() -> (RulesetInstaller, FakeRuleset) {
        let fake = FakeRuleset(backend: .xtCompat)
        return (RulesetInstaller(nft: fake, config: EncdRulesetConfig(), log: Log(level: .error)), fake)
    }

    @Test func aTunableTheRulesDependOnReinstallsTheWholeTableWithItsSets() throws {
        let gw = try Gateway(Self.conf, local: ["192.0.2.1"])
        let spd = gw.box.value.spd
        let (r, fake) = installer()
        var t = Tunables()
        try r.prepare(spd, tunables: t)
        #expect(fake.requests == ["install table inet encd"] && r.backend == .xtCompat)
        #expect(fake.tables["encd"] == EncdRuleset.table(EncdRulesetConfig()))
        #expect(fake.elements["encd/flows_use4"] == nil)

        // Same settings: only the sets, all in one transaction.
        try r.prepare(spd, tunables: t)
        #expect(fake.requests.count == 1 + 1 && fake.requests.last?.hasPrefix("replace elements inet encd flows_out4 (1), flows_out6 (0)") == true)

        // use_fail_open: the table again, with the use sets filled in the same install.
        t.useFailOpen = true
        try r.prepare(spd, tunables: t)
        #expect(fake.requests.last == "install table inet encd" && r.config.useFailOpen)
        #expect(fake.tables["encd"]?.text.contains("@flows_use4 counter queue num 0 bypass") == true)
        #expect(fake.elements["encd/flows_use4"]?.map { "\($0.0) > \($0.1)" } == ["198.18.1.10 > 198.18.2.20"])
        #expect(fake.elements["encd/flows_out4"]?.count == 1)
        let installs = { fake.requests.filter { $0.hasPrefix("install") }.count }
        try r.prepare(spd, tunables: t)
        #expect(installs() == 2 && fake.requests.last?.hasSuffix("require_check6 (0); flush conn_original, conn_reply, conn_checked_original, conn_checked_reply") == true)
        #expect(fake.requests.last?.contains("flows_use4 (1)") == true)

        // icmp_accept_clear off, then the NAT-T port: each re-installs.
        t.icmpAcceptClear = false
        try r.prepare(spd, tunables: t)
        #expect(installs() == 3 && fake.tables["encd"]?.text.contains("icmp type 3 return") == false)
        t.udpEncapPort = 4501
        try r.prepare(spd, tunables: t)
        #expect(installs() == 4 && fake.tables["encd"]?.text.contains("udp dport 4501") == true)

        // Back to the defaults: the use sets and their rules go with the reinstall.
        try r.prepare(spd, tunables: Tunables())
        #expect(installs() == 5 && fake.tables["encd"] == EncdRuleset.table(EncdRulesetConfig()))
        #expect(fake.elements["encd/flows_use4"] == nil)
    }
}

@Suite struct RulesetPresenceTests {
    @Test func aTableSomeoneRemovedIsInstalledAgainWithItsSets() throws {
        let gw = try Gateway(RulesetInstallerTests.conf, local: ["192.0.2.1"])
        let fake = FakeRuleset(backend: .xtCompat)
        let r = RulesetInstaller(nft: fake, config: EncdRulesetConfig(), log: Log(level: .error))
        #expect(try !r.ensureInstalled(gw.box.value.spd))          // never installed: nothing to restore
        try r.prepare(gw.box.value.spd, tunables: Tunables())
        #expect(try !r.ensureInstalled(gw.box.value.spd))
        try fake.removeTable(named: "encd")                        // nft flush ruleset
        #expect(try r.ensureInstalled(gw.box.value.spd))
        #expect(fake.tables["encd"] != nil && fake.elements["encd/flows_out4"]?.count == 1)
    }
}
