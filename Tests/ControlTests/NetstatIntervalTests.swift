// encstat -w: totals first, then per-interval deltas over successive snapshots.

import Control
import IPsec
import Testing

@Suite struct NetstatIntervalTests {
    static let header = "       ipkts       ibytes      opkts       obytes   idrops   odrops\n"

    /// The busy fixture plus five packets in, four out, one tampered, two too big.
    static var later: Response {
        var v = EncstatFixtures.busyValues
        v["esp_input", default: 0] += 5
        v["esp_input_bytes", default: 0] += 600
        v["esp_output", default: 0] += 4
        v["esp_output_bytes", default: 0] += 480
        v["esp_auth_failed", default: 0] += 1
        v["esp_too_big", default: 0] += 2
        v["enc_input_packets", default: 0] += 5
        var r = Response()
        r.counters = v
        return r
    }

    func lines(_ args: [String], _ replies: [Response]) throws -> (String, [Int]) {
        var replies = replies
        var out = ""
        var slept: [Int] = []
        try NetstatRun(try NetstatOptions.parse(args)) { _ in replies.removeFirst() }
            .interval(sleep: { slept.append($0) }, write: { out += $0 })
        return (out, slept)
    }

    @Test func firstLineIsTotalsThenDeltasOfIPsecCounters() throws {
        let (out, slept) = try lines(["-w", "2", "-c", "2"], [EncstatFixtures.busyCounters, Self.later])
        #expect(out == Self.header
                + "           4          460          3          360        3        1\n"
                + "           5          600          4          480        1        2\n")
        #expect(slept == [2])
    }

    @Test func encGroupCountsEnc0AndEncdsOwnDrops() throws {
        let (out, _) = try lines(["-w1", "-c2", "-p", "enc"], [EncstatFixtures.busyCounters, Self.later])
        // queue_overflow (in) 2; fail_closed (out) 1.
        #expect(out == Self.header
                + "           3          252          3          252        2        1\n"
                + "           5            0          0            0        0        0\n")
    }

    @Test func jsonWritesOneObjectPerInterval() throws {
        let (out, _) = try lines(["-j", "-w", "1", "-c", "2", "-p", "esp"], [EncstatFixtures.busyCounters, Self.later])
        #expect(out == """
            {"ibytes":360,"idrops":3,"ipkts":3,"obytes":360,"odrops":1,"opkts":3}
            {"ibytes":600,"idrops":1,"ipkts":5,"obytes":480,"odrops":2,"opkts":4}

            """)
    }

    @Test func headerRepeatsEveryTwentyOneLines() {
        let s = IntervalSample(ipkts: 1, ibytes: 2, opkts: 3, obytes: 4, idrops: 5, odrops: 6)
        #expect(NetstatInterval.text(index: 0, current: s, previous: nil).hasPrefix(Self.header))
        #expect(!NetstatInterval.text(index: 20, current: s, previous: s).hasPrefix(Self.header))
        #expect(NetstatInterval.text(index: 21, current: s, previous: s).hasPrefix(Self.header))
    }

    @Test func aCounterThatWentDownShowsItsNewValue() {
        let old = IntervalSample(ipkts: 100, ibytes: 100, opkts: 100, obytes: 100, idrops: 100, odrops: 100)
        let new = IntervalSample(ipkts: 3, ibytes: 120, opkts: 100, obytes: 4, idrops: 0, odrops: 101)
        #expect(new.since(old) == IntervalSample(ipkts: 3, ibytes: 20, opkts: 0, obytes: 4, idrops: 0, odrops: 1))
    }
}
