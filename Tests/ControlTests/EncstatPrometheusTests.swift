// encstat -o prometheus: text exposition format 0.0.4, checked line by line here and
// parsed by prometheus_client's own parser.

import Control
import Foundation
import IPsec
import Testing

@Suite struct EncstatPrometheusTests {
    static func text() throws -> String {
        try NetstatRun(try NetstatOptions.parse(["-o", "prometheus"])) { r in
            switch r.command {
            case .counters: return EncstatFixtures.busyCounters
            case .show: return EncstatFixtures.sas
            default: return Response.failure("unexpected")
            }
        }.report()
    }

    @Test func everyLineIsHelpTypeOrASampleOfTheFamilyJustDeclared() throws {
        let lines = try Self.text().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.last == "")
        var family = ""
        var declared = Set<String>()
        var expectType = false
        let sample = try Regex(#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? [0-9]+$"#)
        for line in lines.dropLast() {
            if line.hasPrefix("# HELP ") {
                family = String(line.dropFirst(7).prefix { $0 != " " })
                #expect(!declared.contains(family), "\(family) declared twice")
                #expect(PrometheusFamily.isValidName(family))
                declared.insert(family)
                expectType = true
            } else if line.hasPrefix("# TYPE ") {
                #expect(expectType)
                #expect(line == "# TYPE \(family) counter" || line == "# TYPE \(family) gauge", "\(line)")
                #expect(line.hasSuffix("counter") == family.hasSuffix("_total"), "\(line)")
                expectType = false
            } else {
                #expect(!expectType)
                let m = try #require(line.wholeMatch(of: sample), "not a sample: \(line)")
                #expect(String(m.output[1].substring!) == family, "\(line) outside its family \(family)")
            }
        }
    }

    @Test func countersDropsQueuesAndSAsHaveTheirDocumentedNames() throws {
        let lines = Set(try Self.text().split(separator: "\n").map(String.init))
        let expected = [
            "# HELP encd_esp_input_packets_total input ESP packets",
            "# HELP encd_esp_input_bytes_total esp: input bytes",
            "# TYPE encd_esp_input_packets_total counter",
            "encd_esp_input_packets_total 3",
            "encd_esp_input_bytes_total 360",
            "encd_esp_udpencap_input_packets_total 2",
            "encd_ah_input_packets_total 1",
            "encd_enc_input_packets_total 3",
            "encd_acquire_requests_total 1",
            "encd_sa_soft_expired_total 1",
            "encd_drops_total{reason=\"esp_auth_failed\",group=\"esp\",direction=\"in\"} 1",
            "encd_drops_total{reason=\"esp_replay_zero\",group=\"esp\",direction=\"in\"} 1",
            "encd_drops_total{reason=\"esp_too_big\",group=\"esp\",direction=\"out\"} 1",
            "encd_drops_total{reason=\"queue_overflow\",group=\"enc\",direction=\"in\"} 2",
            "encd_drops_total{reason=\"fail_closed\",group=\"enc\",direction=\"out\"} 1",
            "encd_drops_total{reason=\"ah_auth_failed\",group=\"ah\",direction=\"in\"} 0",
            "encd_queue_dropped_total{queue=\"0\",role=\"spd\"} 1",
            "encd_queue_user_dropped_total{queue=\"0\",role=\"spd\"} 2",
            "encd_queue_waiting_packets{queue=\"0\",role=\"spd\"} 1",
            "encd_queue_received_packets_total{queue=\"2\",role=\"ipsec-in\"} 1",
            "encd_sa_packets_total{spi=\"0x00001001\",proto=\"esp\",direction=\"in\",peer=\"192.0.2.2\"} 3",
            "encd_sa_auth_failures_total{spi=\"0x00001001\",proto=\"esp\",direction=\"in\",peer=\"192.0.2.2\"} 1",
            "encd_sa_replay_drops_total{spi=\"0x00001001\",proto=\"esp\",direction=\"in\",peer=\"192.0.2.2\"} 2",
            "encd_sa_sequence{spi=\"0x00001000\",proto=\"esp\",direction=\"out\",peer=\"192.0.2.2\"} 4",
            "encd_sa_lifetime_left_seconds{spi=\"0x00001000\",proto=\"esp\",direction=\"out\",peer=\"192.0.2.2\",limit=\"soft\"} 3000",
            "encd_sa_lifetime_left_bytes{spi=\"0x00001000\",proto=\"esp\",direction=\"out\",peer=\"192.0.2.2\",limit=\"hard\"} 1048216",
            "encd_sa_lifetime_left_packets{spi=\"0x00001001\",proto=\"esp\",direction=\"in\",peer=\"192.0.2.2\",limit=\"hard\"} 997",
            "encd_sa_replay_window{spi=\"0x00000300\",proto=\"ah\",direction=\"out\",peer=\"2001:db8:ff::2\"} 0",
        ]
        for e in expected {
            let present = lines.contains(e)
            #expect(present, "missing: \(e)")
        }
        // One drops sample per drop reason; a metric of its own for every other counter.
        #expect(lines.filter { $0.hasPrefix("encd_drops_total{") }.count == Counter.allCases.filter { $0.dropSide != nil }.count)
        for c in Counter.allCases where c.dropSide == nil {
            #expect(lines.contains { $0.hasPrefix(PrometheusMetrics.familyName(c)! + " ") }, "\(c)")
        }
    }

    @Test func familyNamesAreValidAndUnique() {
        let names = Counter.allCases.compactMap(PrometheusMetrics.familyName)
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { PrometheusFamily.isValidName($0) && $0.hasPrefix("encd_") && $0.hasSuffix("_total") })
        #expect(!names.contains(PrometheusMetrics.dropsFamily))
    }

    @Test func labelValuesAndHelpAreEscaped() {
        var f = PrometheusFamily("encd_x_total", .counter, help: "a \\ b\nc")
        f.add(1, [("role", "q\"\\\n")])
        #expect(f.text == "# HELP encd_x_total a \\\\ b\\nc\n# TYPE encd_x_total counter\nencd_x_total{role=\"q\\\"\\\\\\n\"} 1\n")
    }

    @Test func prometheusClientParsesTheWholeExposition() throws {
        let script = """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
            drops = fams["encd_drops"]
            assert drops.type == "counter", drops.type
            total = sum(s.value for s in drops.samples)
            auth = [s.value for s in drops.samples if s.labels["reason"] == "esp_auth_failed"]
            sa = [s for s in fams["encd_sa_packets"].samples if s.labels["spi"] == "0x00001001"][0]
            q = [s for s in fams["encd_queue_dropped"].samples if s.labels["role"] == "spd"][0]
            print(len(fams), int(total), int(auth[0]), sa.labels["direction"], sa.labels["peer"], int(sa.value),
                  int(q.value), fams["encd_sa_sequence"].type, int(fams["encd_esp_input_packets"].samples[0].value))
            """
        let out = try EncstatPython.run(script, input: try Self.text())
        let families = Counter.allCases.filter { $0.dropSide == nil }.count + 1 + 4 + 11
        // drops: auth 1 + replay 1 + replay zero 1 + too big 1 + queue overflow 2 + fail closed 1 = 7
        #expect(out == "\(families) 7 1 in 192.0.2.2 3 1 gauge 3\n")
    }
}
