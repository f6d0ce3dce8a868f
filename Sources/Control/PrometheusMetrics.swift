// encstat -o prometheus: encd's counters, queues and SAs as Prometheus metrics. The
// names are stable; Docs/counters.md lists every one. Design:
//   - every drop reason is one sample of a single family,
//       encd_drops_total{reason="<counter name>",group="esp|ah|enc",direction="in|out"}
//     so `sum by (group)` or `sum by (direction)` needs no list of names;
//   - every other counter (traffic, UDP encapsulation, acquires, SA expiries, enc0)
//     is a family of its own, named for what it counts (encd_esp_input_packets_total);
//   - NFQUEUE queues: encd_queue_*{queue="0",role="spd"};
//   - SAs: encd_sa_*{spi="0x00001000",proto="esp",direction="in|out",peer="192.0.2.2"},
//     peer being the other end (the destination of an outbound SA, the source of an
//     inbound one); lifetime gauges only for the limits that are set.
// Zeros are written too: a series that appears late breaks rate().

import IPsec

public enum PrometheusMetrics {
    public static let dropsFamily = "encd_drops_total"

    /// The family name of a counter that is not a drop; nil for drops (dropsFamily).
    public static func familyName(_ c: Counter) -> String? {
        guard c.dropSide == nil else { return nil }
        switch c {
        case .espInput: return "encd_esp_input_packets_total"
        case .espOutput: return "encd_esp_output_packets_total"
        case .espUDPEncapInput: return "encd_esp_udpencap_input_packets_total"
        case .espUDPEncapOutput: return "encd_esp_udpencap_output_packets_total"
        case .ahInput: return "encd_ah_input_packets_total"
        case .ahOutput: return "encd_ah_output_packets_total"
        case .acquireRequested: return "encd_acquire_requests_total"
        default: return "encd_\(c.name)_total"
        }
    }

    /// The counter's netstat text in the plural; ESP and AH lines that do not name
    /// their protocol get it in front ("ah: input bytes").
    static func help(_ c: Counter) -> String {
        let text = Counter.plural(c.encText, 2)
        guard c.group == .esp || c.group == .ah, !text.contains(c.group.rawValue.uppercased()) else { return text }
        return "\(c.group.rawValue): \(text)"
    }

    public static func direction(_ side: FlowDirection) -> String { side == .inbound ? "in" : "out" }

    /// The whole exposition.
    public static func exposition(counters: CounterSnapshot, queues: [QueueStatus], sas: [SAStatus]) -> PrometheusExposition {
        var x = PrometheusExposition()
        var drops = PrometheusFamily(dropsFamily, .counter,
                                     help: "Packets encd dropped, by reason (a counter name of Docs/counters.md), group and side")
        for c in Counter.allCases {
            if let side = c.dropSide {
                drops.add(counters[c], [("reason", c.name), ("group", c.group.rawValue), ("direction", direction(side))])
            } else if let name = familyName(c) {
                var f = PrometheusFamily(name, .counter, help: help(c))
                f.add(counters[c])
                x.add(f)
            }
        }
        x.add(drops)
        addQueues(&x, queues)
        addSAs(&x, sas)
        return x
    }

    static func addQueues(_ x: inout PrometheusExposition, _ queues: [QueueStatus]) {
        var received = PrometheusFamily("encd_queue_received_packets_total", .counter, help: "Packets encd read from the NFQUEUE queue")
        var waiting = PrometheusFamily("encd_queue_waiting_packets", .gauge, help: "Packets in the queue waiting for encd's verdict")
        var full = PrometheusFamily("encd_queue_dropped_total", .counter,
                                    help: "Packets the kernel dropped because the queue was full (queue_dropped)")
        var user = PrometheusFamily("encd_queue_user_dropped_total", .counter,
                                    help: "Packets the kernel dropped because encd's netlink socket was full (user_dropped)")
        for q in queues.sorted(by: { $0.number < $1.number }) {
            let l = [("queue", String(q.number)), ("role", q.role)]
            received.add(q.received, l)
            waiting.add(UInt64(q.waiting), l)
            full.add(q.queueDropped, l)
            user.add(q.userDropped, l)
        }
        for f in [received, waiting, full, user] { x.add(f) }
    }

    static func addSAs(_ x: inout PrometheusExposition, _ sas: [SAStatus]) {
        var packets = PrometheusFamily("encd_sa_packets_total", .counter, help: "Packets the SA protected (out) or accepted (in)")
        var bytes = PrometheusFamily("encd_sa_bytes_total", .counter, help: "Bytes the SA protected (out) or accepted (in)")
        var drops = PrometheusFamily("encd_sa_drops_total", .counter, help: "Packets of the SA dropped, every reason")
        var replay = PrometheusFamily("encd_sa_replay_drops_total", .counter, help: "Packets of the SA dropped as possibly replayed")
        var auth = PrometheusFamily("encd_sa_auth_failures_total", .counter, help: "Packets of the SA that failed verification")
        var seq = PrometheusFamily("encd_sa_sequence", .gauge,
                                   help: "Inbound: highest sequence number accepted; outbound: next sequence number to send")
        var window = PrometheusFamily("encd_sa_replay_window", .gauge, help: "Replay window size in packets (0: no replay check)")
        var age = PrometheusFamily("encd_sa_age_seconds", .gauge, help: "Seconds since the SA was added")
        var leftSeconds = PrometheusFamily("encd_sa_lifetime_left_seconds", .gauge, help: "Seconds left before the soft or hard lifetime")
        var leftBytes = PrometheusFamily("encd_sa_lifetime_left_bytes", .gauge, help: "Bytes left before the soft or hard lifetime")
        var leftPackets = PrometheusFamily("encd_sa_lifetime_left_packets", .gauge, help: "Packets left before the soft or hard lifetime")
        for sa in NetstatSAs.sorted(sas) {
            let l = labels(sa)
            packets.add(sa.packets, l)
            bytes.add(sa.bytes, l)
            drops.add(sa.drops, l)
            replay.add(sa.replayDrops, l)
            auth.add(sa.authFailures, l)
            seq.add(sa.sequence, l)
            window.add(UInt64(max(0, sa.replayWindow)), l)
            age.add(sa.age, l)
            for (limit, s, b, p) in [("soft", sa.softSecondsLeft, sa.softBytesLeft, sa.softPacketsLeft),
                                     ("hard", sa.hardSecondsLeft, sa.hardBytesLeft, sa.hardPacketsLeft)] {
                if let s { leftSeconds.add(s, l + [("limit", limit)]) }
                if let b { leftBytes.add(b, l + [("limit", limit)]) }
                if let p { leftPackets.add(p, l + [("limit", limit)]) }
            }
        }
        for f in [packets, bytes, drops, replay, auth, seq, window, age, leftSeconds, leftBytes, leftPackets] { x.add(f) }
    }

    static func labels(_ sa: SAStatus) -> [(String, String)] {
        [("spi", NetstatSAs.spi(sa.spi)), ("proto", sa.proto), ("direction", sa.direction),
         ("peer", sa.direction == "in" ? sa.source : sa.destination)]
    }
}
