// `set NAME VALUE` and the tunables table encctl reads.

import Testing
@testable import Config

@Suite struct TunablesTests {
    @Test func defaultsMatchTheTable() {
        let t = Tunables()
        for info in Tunables.table {
            #expect(t.value(info.name) == info.defaultValue, "\(info.name)")
            #expect(!info.doc.isEmpty)
        }
        #expect(t.changed.isEmpty)
    }

    @Test func setAcceptsBothSpellings() throws {
        let c = try parse("""
            set net.inet.esp.enable 0
            set net.inet.ah.enable=0
            set net.inet.esp.udpencap = 0
            set net.inet.esp.udpencap_port 4501
            set ipsec.replay_window 4096
            set ipsec.policy_log_interval 30
            set ipsec.icmp_accept_clear 0
            set ipsec.use_fail_open 1
            """)
        let t = c.tunables
        #expect(!t.espEnable && !t.ahEnable && !t.udpEncapEnable && !t.icmpAcceptClear && t.useFailOpen)
        #expect(t.udpEncapPort == 4501 && t.replayWindow == 4096 && t.policyLogInterval == 30)
        #expect(t.changed.count == Tunables.table.count)
    }

    @Test func outOfRangeValueSaysWhatIsAllowed() {
        let e = error("set net.inet.esp.udpencap_port 70000\n")
        #expect(e?.description == "/etc/encd/ipsec.conf:1:32: invalid value \"70000\" for net.inet.esp.udpencap_port: expected 1 to 65535")
        #expect(error("set net.inet.esp.enable 2\n")?.message == "invalid value \"2\" for net.inet.esp.enable: expected 0 or 1")
        #expect(error("set ipsec.replay_window 96\n")?.message
                == "invalid value \"96\" for ipsec.replay_window: expected 0 or a multiple of 64 from 64 to 4096")
    }

    @Test func unknownNameIsAnErrorAtTheName() {
        let e = error("\nset net.inet.esp.bogus 1\n")
        #expect(e?.line == 2 && e?.column == 5)
        #expect(e?.message.hasPrefix("unknown tunable \"net.inet.esp.bogus\": expected one of net.inet.esp.enable,") == true)
    }

    @Test func setByNameFromTextForEncctl() throws {
        var t = Tunables()
        try t.set("ipsec.policy_log_interval", to: "0")
        #expect(t.policyLogInterval == 0)
        #expect(t.lines.contains("ipsec.policy_log_interval=0"))
        #expect(throws: TunableError.self) { try t.set("nope", to: "1") }
    }
}
