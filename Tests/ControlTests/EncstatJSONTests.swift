// encstat -j: the selection of the other flags as JSON, read back by Foundation and
// by python's json module.

import Control
import Foundation
import Testing

@Suite struct EncstatJSONTests {
    func json(_ args: [String]) throws -> String {
        try NetstatRun(try NetstatOptions.parse(args)) { r in
            switch r.command {
            case .counters: return EncstatFixtures.busyCounters
            case .show: return r.what == "flow" ? EncstatFixtures.flows : EncstatFixtures.sas
            default: return Response.failure("unexpected")
            }
        }.report()
    }

    func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func statisticsUseOpenBSDFieldNamesAndCountersTheStableNames() throws {
        let o = try object(try json(["-s", "-p", "esp", "-j"]))
        let stats = try #require(o["statistics"] as? [String: [String: Int]])
        #expect(Array(stats.keys) == ["esp"])
        #expect(stats["esp"]?["badauth"] == 1)
        #expect(stats["esp"]?["replay"] == 2)
        #expect(stats["esp"]?["input"] == 3)
        #expect(stats["esp"]?["nopf"] == 0)
        #expect(stats["esp"]?.count == 24)
        let counters = try #require(o["counters"] as? [String: Int])
        #expect(counters["esp_replay"] == 1 && counters["esp_replay_zero"] == 1)
        #expect(counters["ah_input"] == nil)
        #expect(o["queues"] == nil && o["flows"] == nil && o["sas"] == nil)
    }

    @Test func doubleSLeavesZerosOut() throws {
        let o = try object(try json(["-ss", "-j"]))
        let stats = try #require(o["statistics"] as? [String: [String: Int]])
        #expect(Set(stats.keys) == ["esp", "ah", "ipsec", "enc"])
        #expect(stats["esp"]?["nopf"] == nil)
        #expect(stats.values.allSatisfy { $0.values.allSatisfy { $0 != 0 } })
        #expect(stats["enc"]?["queue_overflow"] == 2)
        let queues = try #require(o["queues"] as? [[String: Any]])
        #expect(queues.map { $0["number"] as? Int } == [0, 1, 2])
        #expect(queues[0]["queue_dropped"] as? Int == 1 && queues[0]["user_dropped"] as? Int == 2)
    }

    @Test func flowsAndSAsComeWithTheirFields() throws {
        let o = try object(try json(["-j", "-r", "-a"]))
        #expect(o["statistics"] == nil)
        let flows = try #require(o["flows"] as? [[String: Any]])
        #expect(flows.count == 6)
        #expect(flows[2]["upper_protocol"] as? Int == 6 && flows[2]["source_port"] as? Int == 22)
        let sas = try #require(o["sas"] as? [[String: Any]])
        #expect(sas.map { $0["spi"] as? Int } == [0x300, 0x1000, 0x1001])
        #expect(sas[2]["replay_drops"] as? Int == 2 && sas[2]["hard_packets_left"] as? Int == 1000 - 3)
        #expect(sas[2]["text"] as? String == "esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001001 auth hmac-sha2-256 enc aes")
    }

    @Test func pythonsJSONModuleReadsEveryVariant() throws {
        let script = """
            import json, sys
            d = json.loads(sys.stdin.read())
            print(d["statistics"]["esp"]["badauth"], d["statistics"]["esp"]["replay"], len(d["flows"]), len(d["sas"]),
                  d["queues"][0]["role"], d["counters"]["fail_closed"])
            """
        let out = try EncstatPython.run(script, input: try json(["-s", "-r", "-a", "-j"]))
        #expect(out == "1 2 6 3 spd 1\n")
    }
}
