// An inbound SA's durable reservation under a burst (found by the hour-long soak: a
// new inbound SA met a TCP transfer's ACKs and dropped packets as
// esp_replay_state_pending while its chunks grew one doubling per disk write). The
// model: packets arrive every `gap` ms; each extension becomes durable `write` ms
// after the worker asked (one fsync); a packet beyond the published limit is dropped.

import Config
import IPsec
import Testing
@testable import Daemon

/// Remembers that a worker asked; the test decides when the reserver serves.
final class ManualReserver: SequenceReserver, @unchecked Sendable {
    var asked = false
    func wake(_ r: SequenceReservation) { asked = true }
}

@Suite struct ReservationBurstTests {
    static func inbound() throws -> (SequenceReservation, ManualReserver) {
        let c = try ConfigParser.parse(text: "esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x2000 enc aes-128-gcm enckey 0x" + String(repeating: "33", count: 20),
                                       fileName: "burst.conf")
        let reserver = ManualReserver()
        let r = SequenceReservation(space: .inbound, ceiling: UInt64(UInt32.max), store: MemorySequenceStore(), reserver: reserver,
                                    chunk: SequenceReservation.defaultChunk(.inbound))
        _ = r.activate(c.sas[0])
        return (r, reserver)
    }

    /// Runs `packets` arrivals `gap` ms apart from `start`; returns the drops and the time.
    static func run(_ r: SequenceReservation, _ reserver: ManualReserver, from seq: UInt64, packets: Int,
                    gap: Double, write: Double, start: Double) -> (drops: Int, end: Double) {
        var now = start, drops = 0, servedAt = -1.0
        for i in 0..<packets {
            let s = seq + UInt64(i)
            if servedAt >= 0 && now >= servedAt {
                _ = r.extend(now: UInt64(now))
                servedAt = -1
            }
            let limit = r.limit
            if s > limit { drops += 1; r.ask(s) } else if r.runningLow(after: s, limit: limit) { r.ask(s + 1) }
            if reserver.asked && servedAt < 0 { servedAt = now + write; reserver.asked = false }
            now += gap
        }
        return (drops, now)
    }

    @Test func aBurstOnANewInboundSAIsNotDropped() throws {
        let (r, reserver) = try Self.inbound()
        // 5,000 packets at 50,000/s, the disk taking 5 ms per reservation.
        let (drops, _) = Self.run(r, reserver, from: 1, packets: 5_000, gap: 0.02, write: 5, start: 1_000)
        // Before the rate-based sizing: 514 (chunks doubling one disk write at a time).
        #expect(drops <= 250, "\(drops) of 5000 dropped waiting for the disk")
    }

    /// A slow SA keeps small chunks: after a crash its peer's packets up to the mark
    /// are refused, so a chunk should stay a few seconds of its traffic.
    /// After a flood, what a crash costs: the mark stays about a second of the flood's
    /// traffic ahead of the last number used (failclosed_test: a 500/s ping flood,
    /// kill -9, restart; the peer's next packets must get through soon). With chunks
    /// sized for two seconds it was 1,700 ahead and the test's pings after the restart
    /// were refused as replays.
    @Test func aFloodLeavesTheMarkCloseAhead() throws {
        let (r, reserver) = try Self.inbound()
        let (drops, _) = Self.run(r, reserver, from: 1, packets: 750, gap: 2, write: 5, start: 1_000)
        #expect(drops == 0)
        #expect(r.limit <= 750 + 600, "limit \(r.limit) after 750 packets at 500/s")
    }

    @Test func aSlowInboundSAKeepsSmallChunks() throws {
        let (r, reserver) = try Self.inbound()
        let (drops, _) = Self.run(r, reserver, from: 1, packets: 600, gap: 1_000, write: 5, start: 1_000)
        #expect(drops == 0)
        #expect(r.limit <= 600 + 256, "limit \(r.limit) after 600 packets at 1/s")
    }
}
