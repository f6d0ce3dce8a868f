import Config
import EncCore
import IPsec
import Kernel
import Testing
@testable import Daemon

/// Records events instead of logging them.
final class RecordingEvents: EventSink, @unchecked Sendable {
    var acquires: [FlowSpec] = []
    var policyFailures: [Selector] = []
    var inputFailures: [Counter] = []
    var cleartextRefusals: [Selector] = []
    func acquire(flow: FlowSpec, index: Int, packet: Selector) { acquires.append(flow) }
    func policyFailure(_ packet: Selector, sa: SecurityAssociation) { policyFailures.append(packet) }
    func inputFailure(_ reason: Counter, spi: UInt32, from: IPAddress) { inputFailures.append(reason) }
    func cleartextRefused(_ packet: Selector) { cleartextRefusals.append(packet) }
}

/// One gateway: its policy built from ipsec.conf text, its stages, and fakes for the kernel.
final class Gateway {
    let context: StageContext
    let events = RecordingEvents()
    let sender = FakeSender()
    let tun = FakeTUN()
    let scratch = PacketBuffer()
    let stats = CounterBlock<Counter>()
    let builder: PolicyBuilder
    let box = SnapshotBox()
    let local: Set<IPAddress>
    static let encIndex: UInt32 = 42

    init(_ conf: String, local: [String]) throws {
        self.local = Set(local.map { IPAddress($0)! })
        builder = PolicyBuilder(store: MemorySequenceStore(), maxPolicy: MarkLayout.default.maxPolicy)
        context = StageContext(marks: .default, snapshot: box, events: events, clock: CoarseClock(start: 1),
                               encInterfaceIndex: Gateway.encIndex)
        try load(conf)
    }

    func load(_ conf: String) throws {
        let c = try ConfigParser.parse(text: conf, fileName: "test.conf")
        box.replace(try builder.build(flows: c.flows, sas: c.sas, localAddresses: local, previous: box.value, now: 1))
    }

    /// [X] for a packet this gateway forwards or sends.
    /// The source MAC of the last frame written into enc0 (the injected SA's number).
    var lastInjectedMAC: UInt64? {
        guard let f = tun.written.last, f.count >= 14 else { return nil }
        return f[6..<12].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// [X]. `fromEnc`: the packet came out of enc0 in a frame from `mac` (by default the
    /// last frame encd wrote).
    func spd(_ packet: [UInt8], fromEnc: Bool = false, mac: UInt64? = nil, mark: UInt32 = 0) -> QueueVerdict {
        let b = PacketBuffer(packet: packet)
        var meta = QueuedPacket()
        meta.mark = mark
        meta.inInterface = fromEnc ? Gateway.encIndex : 7
        if fromEnc { meta.hardwareSource = mac ?? lastInjectedMAC }
        return SPDStage.handle(b, meta: meta, context: context, stats: stats)
    }

    /// The cleartext check for inbound cleartext require_check4/6 sent to encd.
    func cleartext(_ packet: [UInt8]) -> QueueVerdict {
        var meta = QueuedPacket()
        meta.inInterface = 7
        return CleartextStage.handle(PacketBuffer(packet: packet), meta: meta, context: context, stats: stats)
    }

    /// IPsec out for a packet [X] marked, read from enc0 as a frame; returns what went
    /// on the wire.
    func output(_ packet: [UInt8], mark: UInt32) -> [UInt8]? {
        outputFrame(EncFrame.make(packet, mark: mark)).last
    }

    /// IPsec out for a frame read from enc0; returns everything it sent.
    func outputFrame(_ frame: [UInt8], share: WorkerShare = .whole) -> [[UInt8]] {
        let before = sender.sent.count
        let verdict = OutputStage.handleFrame(PacketBuffer(packet: frame), sender: sender, scratch: scratch, context: context,
                                              share: share, stats: stats)
        let sent = Array(sender.sent[before...])
        #expect(verdict == (sent.isEmpty ? .drop : .accept))
        return sent
    }

    /// IPsec in; returns the packet written into enc0 (without its Ethernet header).
    func input(_ wire: [UInt8], share: WorkerShare = .whole) -> (QueueVerdict, [UInt8]?) {
        let before = tun.written.count
        let v = InputStage.handle(PacketBuffer(packet: wire), meta: QueuedPacket(), device: tun, context: context,
                                  share: share, stats: stats)
        guard tun.written.count > before, let frame = tun.written.last else { return (v, nil) }
        #expect(Array(frame[0..<6]) == StageContext.interfaceMAC)
        #expect(frame[12] == (frame[14] >> 4 == 4 ? 0x08 : 0x86))
        return (v, Array(frame[14...]))
    }

    var snapshot: CounterSnapshot { CounterSnapshot(summing: [stats]) }
}

/// Frames as encd reads them from enc0: virtio_net_hdr, Ethernet header whose
/// destination MAC carries the packet's mark in its last four bytes (what enc0's egress
/// chain writes), the IP packet.
enum EncFrame {
    static func make(_ packet: [UInt8], mark: UInt32, vnet: [UInt8] = [UInt8](repeating: 0, count: 10)) -> [UInt8] {
        let type: [UInt8] = packet.first.map { $0 >> 4 == 6 } == true ? [0x86, 0xdd] : [0x08, 0x00]
        return vnet + [0x02, 0x65, UInt8(mark >> 24), UInt8((mark >> 16) & 0xff), UInt8((mark >> 8) & 0xff), UInt8(mark & 0xff)]
            + StageContext.interfaceMAC + type + packet
    }
}

let k1 = "0x" + String(repeating: "11", count: 20), k2 = "0x" + String(repeating: "22", count: 20)
func siteConf(peerNAT: Bool = false) -> String {
    """
    gw1 = "192.0.2.1"
    gw2 = "192.0.2.2"
    flow esp from 198.18.1.0/24 to 198.18.2.0/24 local $gw1 peer $gw2
    esp tunnel from $gw1 to $gw2 spi 0x1000:0x1001 enc aes-128-gcm enckey \(k1):\(k2)
    """
}
func siteConf2() -> String {
    """
    gw1 = "192.0.2.1"
    gw2 = "192.0.2.2"
    flow esp from 198.18.2.0/24 to 198.18.1.0/24 local $gw2 peer $gw1
    esp tunnel from $gw1 to $gw2 spi 0x1000:0x1001 enc aes-128-gcm enckey \(k1):\(k2)
    """
}

@Suite struct StageTests {
    let h1 = IPAddress("198.18.1.10")!, h2 = IPAddress("198.18.2.20")!

    func ping(_ s: IPAddress, _ d: IPAddress, seq: UInt16 = 1) -> [UInt8] {
        PacketBuilder.icmpEcho(source: s, destination: d, identifier: 7, sequence: seq, payload: Array(repeating: 0xAB, count: 56))
    }

    @Test func siteToSiteThroughBothGateways() throws {
        let gw1 = try Gateway(siteConf(), local: ["192.0.2.1"])
        let gw2 = try Gateway(siteConf2(), local: ["192.0.2.2"])
        let packet = ping(h1, h2)
        guard case .acceptWithMark(let mark) = gw1.spd(packet) else { Issue.record("expected protect"); return }
        #expect(MarkLayout.default.policy(of: mark) != nil)
        let wire = try #require(gw1.output(packet, mark: mark))
        #expect(wire[9] == IPProtocol.esp)
        let (verdict, inner) = gw2.input(wire)
        #expect(verdict == .drop)                  // the ESP packet is consumed
        #expect(inner == packet)
        // The decrypted packet comes back out of enc0 into [X]: the inbound check passes.
        guard case .acceptWithMark(let m2) = gw2.spd(packet, fromEnc: true) else { Issue.record("inbound check"); return }
        #expect(MarkLayout.default.policy(of: m2) == nil)
        #expect(gw1.snapshot.value(.output, in: .esp) == 1 && gw2.snapshot.value(.input, in: .esp) == 1)
        #expect(gw1.snapshot[.encOutputPackets] == 1 && gw2.snapshot[.encInputPackets] == 1)
    }

    /// With several workers per stage, a worker never touches an SA outside its share
    /// (outbound by SA number, inbound by SPI): a packet the kernel handed to the wrong
    /// one is dropped and counted without using a sequence number or the replay window.
    @Test func aWorkerTouchesOnlyTheSAsOfItsShare() throws {
        let gw1 = try Gateway(siteConf(), local: ["192.0.2.1"])
        let gw2 = try Gateway(siteConf2(), local: ["192.0.2.2"])
        let packet = ping(h1, h2)
        guard case .acceptWithMark(let mark) = gw1.spd(packet) else { Issue.record("expected protect"); return }
        let policy = try #require(MarkLayout.default.policy(of: mark))
        let shares = WorkerShare.all(2)
        let owner = shares[Int(policy % 2)], other = shares[Int((policy + 1) % 2)]
        #expect(gw1.outputFrame(EncFrame.make(packet, mark: mark), share: other).isEmpty)
        #expect(gw1.snapshot[.failClosed] == 1)
        let wire = try #require(gw1.outputFrame(EncFrame.make(packet, mark: mark), share: owner).last)
        #expect(Array(wire[20..<28]) == [0, 0, 0x10, 0x00, 0, 0, 0, 1])   // SPI 0x1000, sequence 1: the refused copy used none
        // Inbound by the SPI's hash.
        let spiOwner = try #require(shares.first { $0.owns(spi: 0x1000) })
        let notOwner = try #require(shares.first { !$0.owns(spi: 0x1000) })
        #expect(gw2.input(wire, share: notOwner).1 == nil)
        #expect(gw2.snapshot[.failClosed] == 1 && gw2.snapshot.value(.input, in: .esp) == 0)
        #expect(gw2.input(wire, share: spiOwner).1 == packet)
        #expect(gw2.input(wire, share: spiOwner).1 == nil)          // a replay, as ever
        #expect(gw2.snapshot[.espReplay] == 1)
    }

    @Test func peerSpoofingAnotherSiteIsDroppedAfterDecryption() throws {
        // gw2 holds a valid SA but sends an inner packet from 198.18.3.0/24, which
        // gw1's flows bind to no SA of gw2.
        let gw1 = try Gateway(siteConf(), local: ["192.0.2.1"])
        let gw2 = try Gateway(siteConf2().replacingOccurrences(of: "198.18.2.0/24", with: "198.18.0.0/16"), local: ["192.0.2.2"])
        let spoofed = ping(IPAddress("198.18.3.3")!, h1)
        guard case .acceptWithMark(let mark) = gw2.spd(spoofed) else { Issue.record("gw2 protect"); return }
        let wire = try #require(gw2.output(spoofed, mark: mark))
        let (_, inner) = gw1.input(wire)
        #expect(inner == spoofed)                  // authentic, decrypted...
        #expect(gw1.spd(spoofed, fromEnc: true) == .drop)   // ...but outside its flows
        #expect(gw1.snapshot.value(.pdrops, in: .esp) == 1)
        #expect(gw1.events.policyFailures.count == 1)
    }

    @Test func inboundCheckUsesAddressesAfterNATOnEnc0() throws {
        // Site 2 presents itself to gw1 as 198.18.12.0/24 (gw2 snats on enc0); gw1's
        // flows name site 2 as presented. gw1 dnats 198.18.11.0/24 → its own site.
        let conf1 = """
        flow esp from 198.18.1.0/24 to 198.18.12.0/24 local 192.0.2.1 peer 192.0.2.2
        esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey \(k1):\(k2)
        """
        let gw1 = try Gateway(conf1, local: ["192.0.2.1"])
        let conf2 = """
        flow esp from 198.18.2.0/24 to 198.18.11.0/24 local 192.0.2.2 peer 192.0.2.1
        esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey \(k1):\(k2)
        """
        let gw2 = try Gateway(conf2, local: ["192.0.2.2"])
        // gw2: h2 → 198.18.11.10 (h1 as gw2 sees it); [X] before NAT, then snat to 198.18.12.20.
        let original = ping(h2, IPAddress("198.18.11.10")!)
        guard case .acceptWithMark(let mark) = gw2.spd(original) else { Issue.record("protect"); return }
        let natted = ping(IPAddress("198.18.12.20")!, IPAddress("198.18.11.10")!)
        let wire = try #require(gw2.output(natted, mark: mark))
        let (_, inner) = gw1.input(wire)
        #expect(inner == natted)
        // gw1's dnat on enc0 rewrites the destination to h1; the frame's source MAC
        // still names the SA that carried it.
        let afterDNAT = ping(IPAddress("198.18.12.20")!, h1)
        guard case .acceptWithMark = gw1.spd(afterDNAT, fromEnc: true) else {
            Issue.record("inbound check after NAT"); return
        }
        // A frame that names no inbound SA (or an outbound one) fails closed.
        #expect(gw1.spd(afterDNAT, fromEnc: true, mac: StageContext.injectedPrefix | 999) == .drop)
        #expect(gw1.spd(afterDNAT, fromEnc: true, mac: 0x02_00_00_00_00_01) == .drop)
        #expect(gw1.stats[.failClosed] == 2)
    }

    @Test func flowTypesWithoutSA() throws {
        let conf = """
        flow esp from 198.18.1.0/24 to 198.18.2.0/24 peer 192.0.2.2 type require
        flow esp from 198.18.1.0/24 to 198.18.3.0/24 peer 192.0.2.3 type use
        flow esp from 198.18.1.0/24 to 198.18.4.0/24 type deny
        flow esp from 198.18.1.0/24 to 198.18.5.0/24 type bypass
        flow esp from 198.18.1.0/24 to 198.18.6.0/24 peer 192.0.2.6 type dontacq
        """
        let gw = try Gateway(conf, local: ["192.0.2.1"])
        #expect(gw.spd(ping(h1, IPAddress("198.18.2.1")!)) == .drop)
        #expect(gw.stats[.requireWithoutSA] == 1 && gw.events.acquires.count == 1)
        #expect(gw.spd(ping(h1, IPAddress("198.18.3.1")!)) == .acceptWithMark(MarkLayout.default.bypass))
        #expect(gw.spd(ping(h1, IPAddress("198.18.4.1")!)) == .drop)
        #expect(gw.stats[.denyFlowDropped] == 1)
        #expect(gw.spd(ping(h1, IPAddress("198.18.5.1")!)) == .acceptWithMark(MarkLayout.default.bypass))
        #expect(gw.spd(ping(h1, IPAddress("198.18.6.1")!)) == .drop)
        #expect(gw.stats[.dontacqWithoutSA] == 1 && gw.events.acquires.count == 1)
        #expect(gw.spd(ping(h1, IPAddress("203.0.113.1")!), mark: 0x5) == .acceptWithMark(0x5 | MarkLayout.default.bypass))
    }

    @Test func inboundCleartextWherePortsDecide() throws {
        // gw1 requires IPsec from site 2 but lets IKE (UDP 500) from gw2's host in.
        let conf = siteConf() + "\nflow esp in proto udp from 198.18.2.20 to 198.18.1.10 port 500 type bypass\n"
        let gw = try Gateway(conf, local: ["192.0.2.1"])
        let ike = PacketBuilder.udp(source: h2, destination: h1, sourcePort: 500, destinationPort: 500)
        let dns = PacketBuilder.udp(source: h2, destination: h1, sourcePort: 500, destinationPort: 53)
        #expect(gw.cleartext(ike) == .accept)
        #expect(gw.cleartext(dns) == .drop)
        #expect(gw.cleartext(ping(h2, h1)) == .drop)
        #expect(gw.stats[.inboundCleartextDropped] == 2 && gw.events.cleartextRefusals.count == 2)
        #expect(gw.cleartext([0x45, 0, 0]) == .drop && gw.stats[.malformedPacket] == 1)
        // The kernel's sets: that host pair is encd's to judge, the rest of the sites' pair drops.
        let plan = gw.box.value.spd.inboundCleartextPlan
        #expect(plan.checks.map { "\($0.0) > \($0.1)" } == ["198.18.2.20 > 198.18.1.10"])
        #expect(plan.drops.count == 16)
    }

    @Test func enc0MTUIsThePathToEachPeerLessWhatItsSAAdds() throws {
        let gw = try Gateway(siteConf(), local: ["192.0.2.1"])
        let sas = gw.box.value.sad.all
        let out = try #require(sas.first { $0.direction == .outbound })
        #expect(out.maximumOverhead == 20 + 8 + 8 + 3 + 2 + 16)    // outer, SPI+seq, IV, padding, trailer, ICV
        var asked: [IPAddress] = []
        #expect(EncDaemon.interfaceMTU(sas) { asked.append($0.spec.destination); return 1492 } == 1492 - 57)
        #expect(asked == [IPAddress("192.0.2.2")!])                  // outbound SAs only
        #expect(EncDaemon.interfaceMTU(sas) { _ in nil } == 1500 - 57)   // no route: 1500 assumed
        #expect(EncDaemon.interfaceMTU(sas) { _ in 1000 } == 1280)       // never below IPv6's minimum
        #expect(EncDaemon.interfaceMTU([]) { _ in 9000 } == 1420)
    }

    @Test func outputWithoutUsablePolicyFailsClosed() throws {
        let gw = try Gateway(siteConf(), local: ["192.0.2.1"])
        #expect(gw.output(ping(h1, h2), mark: 0) == nil)                                  // no protect bit
        #expect(gw.output(ping(h1, h2), mark: MarkLayout.default.protectMark(policy: 99, keeping: 0)!) == nil)
        #expect(gw.stats[.failClosed] == 2)
    }

    /// A run of ESP-in-UDP datagrams is sent after the batch (UDPEncapSender); what the
    /// kernel refused of it is counted as a refused single send is.
    @Test func datagramsOfARunThatWereNotSentAreCounted() {
        let sender = FakeSender()
        let stats = CounterBlock<Counter>()
        var tally = SendTally()
        tally.sent = 10
        tally.full = 3
        tally.tooBig = 2
        tally.failed = 1
        sender.nextTally = tally
        OutputStage.flush(sender, stats: stats)
        #expect(stats[.espQueueFull] == 3 && stats[.espTooBig] == 2 && stats[.espSendFailed] == 1)
        OutputStage.flush(sender, stats: stats)
        #expect(stats[.espQueueFull] == 3 && stats[.espTooBig] == 2 && stats[.espSendFailed] == 1, "counted once")
    }

    @Test func reloadKeepsSequenceNumbersOfUnchangedSAs() throws {
        let gw1 = try Gateway(siteConf(), local: ["192.0.2.1"])
        guard case .acceptWithMark(let mark) = gw1.spd(ping(h1, h2)) else { Issue.record("protect"); return }
        for _ in 0..<3 { _ = gw1.output(ping(h1, h2), mark: mark) }
        try gw1.load(siteConf() + "\nflow esp from 198.18.1.0/24 to 198.18.9.0/24 peer 192.0.2.2\n")
        guard case .acceptWithMark(let mark2) = gw1.spd(ping(h1, h2)) else { Issue.record("protect"); return }
        #expect(mark2 == mark)                      // same policy number
        let wire = try #require(gw1.output(ping(h1, h2), mark: mark2))
        #expect(wire.withUnsafeBytes { $0.be32(24) } == 4)   // sequence continues: 4
    }

    @Test func ikeOnTheNATTPortIsAcceptedForItsSocket() throws {
        let gw = try Gateway(siteConf(), local: ["192.0.2.1"])
        let ike = PacketBuilder.udp(source: IPAddress("192.0.2.2")!, destination: IPAddress("192.0.2.1")!,
                                    sourcePort: 4500, destinationPort: 4500, payload: [0, 0, 0, 0, 9, 9, 9, 9])
        #expect(gw.input(ike).0 == .accept)
    }

    @Test func tamperedInputIsDroppedAndReported() throws {
        let gw1 = try Gateway(siteConf(), local: ["192.0.2.1"])
        let gw2 = try Gateway(siteConf2(), local: ["192.0.2.2"])
        guard case .acceptWithMark(let mark) = gw1.spd(ping(h1, h2)) else { return }
        var wire = try #require(gw1.output(ping(h1, h2), mark: mark))
        wire[wire.count - 1] ^= 1
        let (v, inner) = gw2.input(wire)
        #expect(v == .drop && inner == nil)
        #expect(gw2.events.inputFailures == [.espAuthFailed])
    }
    /// What enc0 hands encd: a TCP super-packet (GSO, checksum left to do) is cut into
    /// the segments the kernel would have sent, each protected and sent in order, and
    /// gw2 gets back exactly those segments.
    @Test(arguments: [false, true])
    func gsoFramesFromEnc0AreSegmentedThenProtected(_ v6: Bool) throws {
        let gw1 = try Gateway(siteConf() + "\nflow esp from 2001:db8:1::/64 to 2001:db8:2::/64 local 192.0.2.1 peer 192.0.2.2",
                              local: ["192.0.2.1"])
        let gw2 = try Gateway(siteConf2() + "\nflow esp from 2001:db8:2::/64 to 2001:db8:1::/64 local 192.0.2.2 peer 192.0.2.1",
                              local: ["192.0.2.2"])
        let frames = Frames.run(v6: v6, count: 12, size: 1300, last: 99)
        let merged = FrameInjectorTests.inject(frames).0[0]
        guard case .acceptWithMark(let mark) = gw1.spd(Array(frames[0].dropFirst(14))) else { Issue.record("protect"); return }
        // The frame as enc0 gives it: the merged frame's virtio header, the mark in the MAC.
        let frame = EncFrame.make(Array(merged.dropFirst(10 + 14)), mark: mark, vnet: Array(merged.prefix(10)))
        let wire = gw1.outputFrame(frame)
        #expect(wire.count == 12)
        #expect(gw1.stats[.encOutputPackets] == 12)
        let inner = try wire.map { try #require(gw2.input($0).1) }
        #expect(inner == frames.map { Array($0.dropFirst(14)) })
    }

    /// A frame whose mark names no policy (PROTECT clear, or a number with no SA) fails
    /// closed, counted; the kernel's own link-local multicast is dropped uncounted.
    @Test func framesWithoutAPolicyAreDropped() throws {
        let gw = try Gateway(siteConf(), local: ["192.0.2.1"])
        #expect(gw.outputFrame(EncFrame.make(ping(h1, h2), mark: 0)).isEmpty)
        let unknown = try #require(MarkLayout.default.protectMark(policy: 77, keeping: 0))
        #expect(gw.outputFrame(EncFrame.make(ping(h1, h2), mark: unknown)).isEmpty)
        #expect(gw.stats[.failClosed] == 2)
        let mld = PacketBuilder.ip(source: IPAddress("fe80::1")!, destination: IPAddress("ff02::16")!, protocol: 0,
                                   payload: [UInt8](repeating: 0, count: 36))
        #expect(gw.outputFrame(EncFrame.make(mld, mark: 0)).isEmpty)
        #expect(gw.stats[.failClosed] == 2 && gw.stats[.malformedPacket] == 0)
        // Too short for the headers, or not IP: malformed.
        #expect(gw.outputFrame([UInt8](repeating: 0, count: 20)).isEmpty)
        var arp = EncFrame.make(ping(h1, h2), mark: 0)
        arp[22] = 0x08; arp[23] = 0x06
        #expect(gw.outputFrame(arp).isEmpty)
        #expect(gw.stats[.malformedPacket] == 2)
    }
}

@Suite struct SequenceSafetyTests {
    @Test func reloadedSAContinuesAboveWhatItUsedBeforeDeletion() throws {
        // Delete an SA (reload without it), then load it again with the same keys: the
        // sequence numbers must continue upward, never restart (AES-GCM nonce reuse).
        let store = MemorySequenceStore()
        let builder = PolicyBuilder(store: store, maxPolicy: 1023)
        let conf = try ConfigParser.parse(text: siteConf(), fileName: "t")
        let local: Set<IPAddress> = [IPAddress("192.0.2.1")!]
        let s1 = try builder.build(flows: conf.flows, sas: conf.sas, localAddresses: local, previous: .empty, now: 1)
        let sa1 = try #require(s1.sad.all.first { $0.direction == .outbound })
        var last: UInt64 = 0
        for _ in 0..<5 { last = try #require(sa1.takeSequence()) }
        let s2 = try builder.build(flows: [], sas: [], localAddresses: local, previous: s1, now: 2)
        #expect(sa1.takeSequence() == nil || sa1.nextSequence <= (sa1.reservation?.limit ?? 0) + 1)
        let s3 = try builder.build(flows: conf.flows, sas: conf.sas, localAddresses: local, previous: s2, now: 3)
        let sa3 = try #require(s3.sad.all.first { $0.direction == .outbound })
        #expect(sa3 !== sa1)
        #expect(try #require(sa3.takeSequence()) > last)
    }
}
