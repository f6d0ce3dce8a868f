// No key material in any encstat output, even from a daemon that (wrongly) put keys
// in an SA's ipsecctl text.

import Control
import Testing

@Suite struct EncstatNoKeysTests {
    @Test func noFormatShowsAKey() throws {
        #expect(EncstatFixtures.sas.sas!.contains { $0.text.contains(EncstatFixtures.authKey) })
        let commandLines: [[String]] = [
            [], ["-s"], ["-ss"], ["-a"], ["-an"], ["-r"], ["-s", "-r", "-a"], ["-j", "-s", "-r", "-a"],
            ["-j", "-a"], ["-o", "prometheus"],
        ]
        for args in commandLines {
            let out = try NetstatRun(try NetstatOptions.parse(args)) { r in
                #expect(r.showKeys != true)
                switch r.command {
                case .counters: return EncstatFixtures.busyCounters
                case .show: return r.what == "flow" ? EncstatFixtures.flows : EncstatFixtures.sas
                default: return Response.failure("unexpected")
                }
            }.report()
            for s in EncstatFixtures.secrets { #expect(!out.contains(s), "\(args) shows \(s)") }
        }
    }

    @Test func keyContinuationLinesAreCut() {
        #expect(NetstatJSON.strippingKeys("esp tunnel from a to b spi 0x1 enc aes \\\n\tenckey 0xcdcd") == "esp tunnel from a to b spi 0x1 enc aes")
        #expect(NetstatJSON.strippingKeys("esp tunnel from a to b spi 0x1 authkey 0xabab enc aes") == "esp tunnel from a to b spi 0x1")
        #expect(NetstatJSON.strippingKeys("esp tunnel from a to b spi 0x1 enc aes") == "esp tunnel from a to b spi 0x1 enc aes")
    }
}
