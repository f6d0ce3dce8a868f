// Golden text for encstat -s / -p / -ss: OpenBSD's netstat wording and plural rules
// (usr.bin/netstat/inet.c: "\t%llu text", "s" unless the value is 1), encd's enc group.

import Control
import IPsec
import Testing

@Suite struct EncstatCountersTests {
    static let zeroESP = """
        esp:
        \t0 input ESP packets
        \t0 output ESP packets
        \t0 packets from unsupported protocol families
        \t0 packets shorter than header shows
        \t0 packets dropped due to policy
        \t0 packets for which no TDB was found
        \t0 input packets that failed to be processed
        \t0 packets with bad encryption received
        \t0 packets that failed verification received
        \t0 packets for which no XFORM was set in TDB received
        \t0 packets were dropped due to full output queue
        \t0 packets where counter wrapping was detected
        \t0 possibly replayed packets received
        \t0 packets with bad payload size or padding received
        \t0 packets attempted to use an invalid TDB
        \t0 packets got larger than max IP packet size
        \t0 packets that failed crypto processing
        \t0 output packets could not be sent
        \t0 input UDP encapsulated ESP packets
        \t0 output UDP encapsulated ESP packets
        \t0 UDP packets for non-encapsulating TDB received
        \t0 raw ESP packets for encapsulating TDB received
        \t0 input bytes
        \t0 output bytes

        """

    static let busyESP = """
        esp:
        \t3 input ESP packets
        \t3 output ESP packets
        \t0 packets from unsupported protocol families
        \t0 packets shorter than header shows
        \t0 packets dropped due to policy
        \t0 packets for which no TDB was found
        \t0 input packets that failed to be processed
        \t0 packets with bad encryption received
        \t1 packet that failed verification received
        \t0 packets for which no XFORM was set in TDB received
        \t0 packets were dropped due to full output queue
        \t0 packets where counter wrapping was detected
        \t2 possibly replayed packets received
        \t0 packets with bad payload size or padding received
        \t0 packets attempted to use an invalid TDB
        \t1 packet got larger than max IP packet size
        \t0 packets that failed crypto processing
        \t0 output packets could not be sent
        \t2 input UDP encapsulated ESP packets
        \t0 output UDP encapsulated ESP packets
        \t0 UDP packets for non-encapsulating TDB received
        \t0 raw ESP packets for encapsulating TDB received
        \t360 input bytes
        \t360 output bytes

        """

    static let busyAH = """
        ah:
        \t1 input AH packets
        \t0 output AH packets
        \t0 packets from unsupported protocol families
        \t0 packets shorter than header shows
        \t0 packets dropped due to policy
        \t0 packets for which no TDB was found
        \t0 input packets that failed to be processed
        \t0 packets that failed verification received
        \t0 packets for which no XFORM was set in TDB received
        \t0 packets were dropped due to full output queue
        \t0 packets where counter wrapping was detected
        \t0 possibly replayed packets received
        \t0 packets with bad authenticator length received
        \t0 packets attempted to use an invalid TDB
        \t0 packets got larger than max IP packet size
        \t0 packets that failed crypto processing
        \t100 input bytes
        \t0 output bytes

        """

    static let busyIPsec = """
        ipsec:
        \t4 input IPsec packets
        \t3 output IPsec packets
        \t460 input bytes
        \t360 output bytes
        \t3 packets dropped on input
        \t1 packet dropped on output
        \t0 packets that failed crypto processing
        \t0 packets for which no XFORM was set in TDB received
        \t0 packets for which no TDB was found
        \t1 TDB with hardlimit excess

        """

    static let busyEnc = """
        enc:
        \t3 packets in on enc0
        \t252 bytes in on enc0
        \t3 packets out on enc0
        \t252 bytes out on enc0
        \t0 packets dropped by a deny flow
        \t0 packets of a require flow dropped for want of an SA
        \t0 packets of a dontacq flow dropped for want of an SA
        \t1 SA acquire request
        \t0 cleartext packets dropped on input: a require flow covers them (judged by encd)
        \t0 malformed packets dropped
        \t2 packets lost to a full queue (counted by the kernel)
        \t1 packet dropped closed (no SA, or SA unusable)
        \t0 NAT-T keepalives dropped
        \t0 monitor events dropped for a slow client
        \t0 ESP packets dropped: not yet recorded as accepted in the state directory
        \t0 AH packets dropped: not yet recorded as accepted in the state directory
        \t0 verdicts the kernel did not take (sent again one by one)
        \t0 decrypted packets dropped: enc0 would not take them
        \t0 packets dropped by the kernel's reverse-path filter (host-wide, IPReversePathFilter)
        \t0 decrypted packets written into enc0 merged with others of their flow
        \t1 SA past their soft lifetime
        \t1 SA past their hard lifetime
        \tqueue 0 (spd):
        \t\t6 packets received by encd
        \t\t1 packet waiting for a verdict
        \t\t1 packet dropped because the queue was full (queue_dropped)
        \t\t2 packets dropped because encd's socket was full (user_dropped)
        \tqueue 1 (ipsec-out):
        \t\t3 packets received by encd
        \t\t0 packets waiting for a verdict
        \t\t0 packets dropped because the queue was full (queue_dropped)
        \t\t0 packets dropped because encd's socket was full (user_dropped)
        \tqueue 2 (ipsec-in):
        \t\t1 packet received by encd
        \t\t0 packets waiting for a verdict
        \t\t0 packets dropped because the queue was full (queue_dropped)
        \t\t0 packets dropped because encd's socket was full (user_dropped)

        """

    static let busyEncHidingZeros = """
        enc:
        \t3 packets in on enc0
        \t252 bytes in on enc0
        \t3 packets out on enc0
        \t252 bytes out on enc0
        \t1 SA acquire request
        \t2 packets lost to a full queue (counted by the kernel)
        \t1 packet dropped closed (no SA, or SA unusable)
        \t1 SA past their soft lifetime
        \t1 SA past their hard lifetime
        \tqueue 0 (spd):
        \t\t6 packets received by encd
        \t\t1 packet waiting for a verdict
        \t\t1 packet dropped because the queue was full (queue_dropped)
        \t\t2 packets dropped because encd's socket was full (user_dropped)
        \tqueue 1 (ipsec-out):
        \t\t3 packets received by encd
        \tqueue 2 (ipsec-in):
        \t\t1 packet received by encd

        """

    func run(_ args: [String], _ response: Response) throws -> String {
        try NetstatRun(try NetstatOptions.parse(args)) { _ in response }.report()
    }

    @Test func espGroupOfAFreshDaemonPrintsEveryLineInThePlural() throws {
        #expect(try run(["-s", "-p", "esp"], EncstatFixtures.zeroCounters) == Self.zeroESP)
    }

    @Test func espGroupUsesTheSingularForOneAndSumsFinerReasonsIntoOpenBSDLines() throws {
        // esp_replay 1 + esp_replay_zero 1 = "2 possibly replayed packets received".
        #expect(try run(["-s", "-p", "esp"], EncstatFixtures.busyCounters) == Self.busyESP)
        #expect(Self.busyESP.contains("\t1 packet that failed verification received\n"))
    }

    @Test func ahInputAndOutputLinesHaveNoPluralSwitch() throws {
        #expect(try run(["-p", "ah"], EncstatFixtures.busyCounters) == Self.busyAH)
    }

    @Test func ipsecGroupAggregatesESPAndAH() throws {
        #expect(try run(["-sp", "ipsec"], EncstatFixtures.busyCounters) == Self.busyIPsec)
    }

    @Test func encGroupShowsEnc0EncdReasonsAndEachQueue() throws {
        #expect(try run(["-s", "-p", "enc"], EncstatFixtures.busyCounters) == Self.busyEnc)
    }

    @Test func doubleSHidesZeroLinesButKeepsHeadings() throws {
        #expect(try run(["-ss", "-p", "enc"], EncstatFixtures.busyCounters) == Self.busyEncHidingZeros)
        let esp = try run(["-ss", "-p", "esp"], EncstatFixtures.busyCounters)
        #expect(esp == """
            esp:
            \t3 input ESP packets
            \t3 output ESP packets
            \t1 packet that failed verification received
            \t2 possibly replayed packets received
            \t1 packet got larger than max IP packet size
            \t2 input UDP encapsulated ESP packets
            \t360 input bytes
            \t360 output bytes

            """)
        #expect(try run(["-ss", "-p", "esp"], EncstatFixtures.zeroCounters) == "esp:\n")
    }

    @Test func singleSPrintsEveryGroupInOrder() throws {
        let all = try run(["-s"], EncstatFixtures.busyCounters)
        #expect(all == Self.busyESP + Self.busyAH + Self.busyIPsec + Self.busyEnc)
        #expect(try run([], EncstatFixtures.busyCounters) == all)
    }

    @Test func queuesComeFromStatusWhenTheCountersReplyHasNone() throws {
        var seen: [Command] = []
        let out = try NetstatRun(try NetstatOptions.parse(["-p", "enc"])) { r in
            seen.append(r.command)
            var resp = Response()
            if r.command == .counters { resp.counters = EncstatFixtures.busyValues } else { resp.queues = EncstatFixtures.queues(dropped: 1) }
            return resp
        }.report()
        #expect(out == Self.busyEnc)
        #expect(seen == [.counters, .status])
    }

    @Test func withoutQueuesAnywhereTheFallbackSuppliesThem() throws {
        var run = NetstatRun(try NetstatOptions.parse(["-p", "enc"])) { r in
            var resp = Response()
            if r.command == .counters { resp.counters = EncstatFixtures.busyValues }
            return resp
        }
        run.fallbackQueues = { EncstatFixtures.queues(dropped: 1) }
        #expect(try run.report() == Self.busyEnc)
    }

    @Test func espAloneAsksForNoQueues() throws {
        var seen: [Command] = []
        _ = try NetstatRun(try NetstatOptions.parse(["-p", "esp"])) { r in
            seen.append(r.command)
            var resp = Response()
            resp.counters = EncstatFixtures.busyValues
            return resp
        }.report()
        #expect(seen == [.counters])
    }

    @Test func unknownCounterNamesAreIgnoredAndMissingOnesReadZero() {
        let snap = NetstatCounters.snapshot(["esp_input": 5, "no_such_counter": 9])
        #expect(snap[.espInput] == 5)
        #expect(snap.values.reduce(0, +) == 5)
    }

    @Test func everyCounterHasAUniqueStableName() {
        #expect(NetstatCounters.byName.count == Counter.allCases.count)
        #expect(NetstatCounters.byName["esp_auth_failed"] == .espAuthFailed)
        #expect(NetstatCounters.byName["esp_udp_encap_input"] == .espUDPEncapInput)
    }

    @Test func everyEncCounterAppearsOnceInTheEncReport() {
        let enc = Counter.allCases.filter { $0.group == .enc } + [.saSoftExpired, .saHardExpired]
        #expect(Set(NetstatCounters.encOrder) == Set(enc))
        #expect(NetstatCounters.encOrder.count == enc.count)
    }

    @Test func aDaemonErrorBecomesOneLine() {
        #expect(throws: ControlError.self) {
            try NetstatRun(NetstatOptions()) { _ in Response.failure("permission denied") }.report()
        }
        do {
            _ = try NetstatRun(NetstatOptions()) { _ in Response.failure("permission denied") }.report()
        } catch {
            #expect("\(error)" == "encd: permission denied")
        }
    }
}
