// Canned daemon replies for encstat's tests: a fresh daemon (every counter zero), one
// after three pings with a tampered and a replayed packet, flows of every type and
// SAs with and without lifetimes. One SA's text carries keys, as a daemon that
// wrongly sent them would: no encstat output may show them.

import Control
import IPsec

enum EncstatFixtures {
    static let authKey = "0x" + String(repeating: "ab", count: 32)
    static let encKey = "0x" + String(repeating: "cd", count: 16)

    /// Every counter at zero.
    static var zeroCounters: Response {
        var r = Response()
        r.counters = Dictionary(uniqueKeysWithValues: Counter.allCases.map { ($0.name, UInt64(0)) })
        r.queues = queues(dropped: 0)
        return r
    }

    /// Three pings each way, one tampered packet, one replayed (and one with sequence 0).
    static let busyValues: [String: UInt64] = [
        "esp_input": 3, "esp_input_bytes": 360, "esp_output": 3, "esp_output_bytes": 360,
        "esp_auth_failed": 1, "esp_replay": 1, "esp_replay_zero": 1,
        "esp_udp_encap_input": 2, "esp_too_big": 1,
        "ah_input": 1, "ah_input_bytes": 100,
        "sa_soft_expired": 1, "sa_hard_expired": 1,
        "enc_input_packets": 3, "enc_input_bytes": 252, "enc_output_packets": 3, "enc_output_bytes": 252,
        "queue_overflow": 2, "fail_closed": 1, "acquire_requested": 1,
        "a_counter_from_a_newer_encd": 7,
    ]

    static var busyCounters: Response {
        var r = Response()
        r.counters = busyValues
        r.queues = queues(dropped: 1)
        return r
    }

    static func queues(dropped: UInt64) -> [QueueStatus] {
        [QueueStatus(number: 1, role: "ipsec-out", waiting: 0, queueDropped: 0, userDropped: 0, received: 3),
         QueueStatus(number: 0, role: "spd", waiting: 1, queueDropped: dropped, userDropped: 2, received: 6),
         QueueStatus(number: 2, role: "ipsec-in", waiting: 0, queueDropped: 0, userDropped: 0, received: 1)]
    }

    static var flows: Response {
        var r = Response()
        r.flows = [
            FlowStatus(text: "flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type require", proto: "esp",
                       direction: "out", upperProtocol: nil, source: "10.1.0.0/24", sourcePort: nil,
                       destination: "10.2.0.0/24", destinationPort: nil, peer: "192.0.2.2", type: "require"),
            FlowStatus(text: "flow esp in from 10.2.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 type require", proto: "esp",
                       direction: "in", upperProtocol: nil, source: "10.2.0.0/24", sourcePort: nil,
                       destination: "10.1.0.0/24", destinationPort: nil, peer: "192.0.2.2", type: "require"),
            FlowStatus(text: "flow ah out proto tcp from 192.0.2.1 port 22 to 0.0.0.0/0 peer 198.51.100.7 type use",
                       proto: "ah", direction: "out", upperProtocol: 6, source: "192.0.2.1", sourcePort: 22,
                       destination: "0.0.0.0/0", destinationPort: nil, peer: "198.51.100.7", type: "use"),
            FlowStatus(text: "flow esp out from 172.16.0.0/12 to 10.0.0.0/8 type bypass", proto: "esp",
                       direction: "out", upperProtocol: nil, source: "172.16.0.0/12", sourcePort: nil,
                       destination: "10.0.0.0/8", destinationPort: nil, peer: nil, type: "bypass"),
            FlowStatus(text: "flow esp out proto udp from 2001:db8:1::/64 to 2001:db8:2:0:1234:5678:9abc:def0 port 53 peer 2001:db8:ff::2 type deny",
                       proto: "esp", direction: "out", upperProtocol: 17, source: "2001:db8:1::/64", sourcePort: nil,
                       destination: "2001:db8:2:0:1234:5678:9abc:def0", destinationPort: 53, peer: "2001:db8:ff::2", type: "deny"),
            FlowStatus(text: "flow esp out from ::/0 to 2001:db8:2::/48 peer 2001:db8:ff::2 type acquire", proto: "esp",
                       direction: "out", upperProtocol: nil, source: "::/0", sourcePort: nil,
                       destination: "2001:db8:2::/48", destinationPort: nil, peer: "2001:db8:ff::2", type: "acquire"),
        ]
        return r
    }

    static var sas: Response {
        var out = SAStatus(text: "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes",
                           proto: "esp", spi: 0x1000, source: "192.0.2.1", destination: "192.0.2.2", direction: "out",
                           state: "mature", replayWindow: 64, sequence: 4, packets: 3, bytes: 360, drops: 0,
                           replayDrops: 0, authFailures: 0, age: 60, sinceFirstUse: 50, flags: ["replay"])
        out.hardSecondsLeft = 3540
        out.hardBytesLeft = 1_048_216
        out.softSecondsLeft = 3000
        var inbound = SAStatus(text: "esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001001 auth hmac-sha2-256 enc aes \\\n\tauthkey \(authKey) \\\n\tenckey \(encKey)",
                               proto: "esp", spi: 0x1001, source: "192.0.2.2", destination: "192.0.2.1", direction: "in",
                               state: "mature", replayWindow: 64, sequence: 3, packets: 3, bytes: 360, drops: 3,
                               replayDrops: 2, authFailures: 1, age: 60, sinceFirstUse: 49, flags: ["replay", "esn"])
        inbound.hardPacketsLeft = 997
        let ah = SAStatus(text: "ah transport from 2001:db8:ff::1 to 2001:db8:ff::2 spi 0x00000300 auth hmac-sha2-256",
                          proto: "ah", spi: 0x300, source: "2001:db8:ff::1", destination: "2001:db8:ff::2", direction: "out",
                          state: "soft-expired", replayWindow: 0, sequence: 1, packets: 0, bytes: 0, drops: 0,
                          replayDrops: 0, authFailures: 0, age: 5, sinceFirstUse: nil, flags: [])
        var r = Response()
        r.sas = [inbound, out, ah]
        return r
    }

    /// Every text encstat may print must lack these.
    static let secrets = [String(repeating: "ab", count: 8), String(repeating: "cd", count: 8), "authkey", "enckey"]
}
