// End-to-end tests on the real kernel. They run only inside the namespace that
// Tests/Integration/run-namespace-tests.sh creates (see Netns.active), one at a time.

import CAllocCounter
import Foundation
import Glibc
import Testing
import EncCore
@testable import Kernel

/// encd's kernel side, set up the way the daemon will: queues bound first, then enc0 (a
/// TAP read with its offloads, its egress table), routing, and the nft table.
final class Rig {
    let config: EncdRulesetConfig
    var marks: MarkLayout { config.marks }
    let table: UInt32 = 100
    let tun: TUNDevice
    let routing: Rtnetlink
    let nft: Nftables
    let spd: NFQueue
    /// ESP in UDP's sockets (the table's tproxy rule names their port); nil closes them.
    var udpInput: SocketInputQueue?
    let backend: NftQueueBackend
    var logs: [String] = []
    let rules: [MarkRule]

    /// enc0's other queues (`queues` > 1: a multi-queue TAP steered by the mark, as encd
    /// opens it for several workers).
    var queues: [TUNDevice] = []

    init(queues count: Int = 1) throws {
        var config = EncdRulesetConfig()
        let udpInput = try SocketInputQueue(udpEncapsulationFor: config.inputQueue, waitMilliseconds: 200)
        config.natTraversalSocketPort = udpInput.socketPort
        self.config = config
        self.udpInput = udpInput
        spd = try NFQueue(QueueConfig(number: config.spdQueue))
        tun = try TUNDevice(name: config.interface, tap: true, multiQueue: count > 1, vnetHeader: true)
        queues = [tun]
        for _ in 1..<max(1, count) {
            queues.append(try TUNDevice(name: config.interface, tap: true, multiQueue: true, vnetHeader: true))
        }
        if count > 1 { try tun.steerByMark(mask: config.marks.policyMask, shift: config.marks.policyShift, queues: count) }
        try tun.configureEthernet(address: Rig.enc0MAC)
        try tun.enableReadOffloads()
        try tun.setTransmitQueueLength(1000)
        routing = try Rtnetlink()
        let protect = config.marks.protect
        rules = [AddressFamily.inet, .inet6].map { MarkRule(family: $0, value: protect, mask: protect, table: 100, priority: 100) }
        try routing.setLink(name: tun.name, up: true, mtu: 1400)
        try routing.setLooseReversePathFilter(device: tun.name)
        // Without an IPv4 address on enc0, rp_filter drops every injected packet (see RoutingControl).
        try routing.addAddress(IPAddress("192.0.2.1")!, prefixLength: 32, device: tun.name)
        for rule in rules { try routing.addRule(rule) }
        try routing.addDefaultRoute(family: .inet, table: table, device: tun.name)
        try routing.addDefaultRoute(family: .inet6, table: table, device: tun.name)
        var lines: [String] = []
        nft = try Nftables { lines.append($0) }
        try nft.installEgress(EncdRuleset.egressTable(config))
        backend = try nft.install(EncdRuleset.table(config))
        // [X] queues only what an outbound flow may match; these tests want everything.
        for (family, name) in [(AddressFamily.inet, EncdRuleset.flowSet4), (.inet6, EncdRuleset.flowSet6)] {
            try nft.replaceElements(of: NftAddressPairSet(name, family: family), table: config.table,
                                    pairs: [(.any(family), .any(family))])
        }
        logs = lines
        print(logs.joined(separator: "\n"))
    }

    func tearDown() throws {
        try nft.removeTable(named: config.table)
        for rule in rules { try routing.deleteRule(rule) }
        try routing.deleteDefaultRoute(family: .inet, table: table, device: tun.name)
        try routing.deleteDefaultRoute(family: .inet6, table: table, device: tun.name)
    }

    /// What encd writes into enc0 comes back to [X] (spd_forward) for the inbound check;
    /// these tests let it through with the bypass mark, as the check would.
    func passInjected(id: UInt8) {
        let enc0 = (try? routing.interfaceIndex(of: tun.name)) ?? 0
        let injected = spd.await(seconds: 2, otherwise: { _ in .drop }) { m, b in
            m.inInterface == enc0 && b.count > 25 && b[24] == id && b[25] == id
        }
        #expect(injected != nil, "the injected packet did not reach [X] from enc0")
        if let injected {
            _ = spd.setVerdict(.acceptWithMark(marks.bypassMark(keeping: injected.0.mark)), id: injected.0.id)
            _ = spd.flushVerdicts()
        }
    }

    static let enc0MAC: [UInt8] = [0x02, 0x65, 0x6e, 0x63, 0x30, 0x00]

    /// Writes the IP packet in `buffer` into enc0 as encd does: a plain virtio header
    /// and an Ethernet frame to enc0 from an SA's MAC.
    func write(_ packet: [UInt8]) -> Bool {
        let type: [UInt8] = packet[0] >> 4 == 6 ? [0x86, 0xdd] : [0x08, 0x00]
        let frame = [UInt8](repeating: 0, count: 10) + Rig.enc0MAC + [0x06, 0x65, 0x6e, 0, 0, 1] + type + packet
        let buffer = PacketBuffer()
        buffer.load(frame)
        return tun.write(from: buffer) == .done(frame.count)
    }

    /// Reads frames from enc0 until one whose IP packet matches, or timeout: the
    /// packet and the mark enc0's egress chain wrote into the destination MAC.
    func readTUN(seconds: Double, queue: Int = 0, _ match: ([UInt8]) -> Bool) -> (packet: [UInt8], mark: UInt32)? {
        let buffer = PacketBuffer()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if case .done = queues[queue].read(into: buffer), buffer.count > 24 {
                let f = buffer.array
                let ip = Array(f[24...])
                if match(ip) { return (ip, f[12..<16].reduce(0) { $0 << 8 | UInt32($1) }) }
            } else {
                usleep(10_000)
            }
        }
        return nil
    }
}

@Suite(.serialized, .enabled(if: Netns.active, "root, inside run-namespace-tests.sh's namespace"))
struct KernelNamespaceTests {
    @Test func tableInstallsWithQueueFallbackAndIsRemoved() throws {
        let rig = try Rig()
        let (_, listing) = try Netns.run(["nft", "list", "table", "inet", "encd"])
        #expect(listing.contains("chain spd_output"))
        #expect(listing.contains("type route hook output priority -170"))
        #expect(listing.contains("hook postrouting priority srcnat + 10") || listing.contains("hook postrouting priority 110"))
        #expect(rig.logs.count == 1 && rig.logs[0].contains(rig.backend.rawValue))
        // Installing again replaces the table in one transaction (a crashed encd's table).
        #expect(try rig.nft.install(EncdRuleset.table(rig.config)) == rig.backend)
        try rig.tearDown()
        let (status, _) = try Netns.run(["nft", "list", "table", "inet", "encd"])
        #expect(status != 0, "table inet encd still present after removeTable")
        try rig.nft.removeTable(named: "encd")  // already gone: not an error
        let (_, rules) = try Netns.run(["ip", "rule", "show"])
        #expect(!rules.contains("lookup 100"))
    }

    @Test func tableIsInstalledWithItsSetElements() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        // Replacing the table (a crashed encd's) with the elements in the same batch.
        let flows = NftAddressPairSet(EncdRuleset.flowSet4, family: .inet)
        let pair = (IPPrefix("198.51.100.0/24")!, IPPrefix("203.0.113.0/24")!)
        #expect(try rig.nft.install(EncdRuleset.table(rig.config), contents: [NftSetContents(flows, [pair])]) == rig.backend)
        let (_, listing) = try Netns.run(["nft", "list", "set", "inet", "encd", "flows_out4"])
        #expect(listing.contains("198.51.100.0/24 . 203.0.113.0/24"), "\(listing)")
    }

    @Test func addresslessEnc0DropsInjectedPacketsUnderRPFilter() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        try rig.routing.deleteAddress(IPAddress("192.0.2.1")!, prefixLength: 32, device: "enc0")
        let before = try Netns.run(["nstat", "-az", "TcpExtIPReversePathFilter"]).1
        #expect(rig.write(Packets.echoRequest(from: "203.0.113.5", to: "198.51.100.1", id: 0x4343)))
        rig.passInjected(id: 0x43)
        let reply = rig.spd.await(seconds: 1) { _, b in Packets.v4Destination(b) == "203.0.113.5" && b.count > 25 && b[24] == 0x43 && b[25] == 0x43 }
        #expect(reply == nil, "the kernel now accepts injected packets on an address-less enc0; the address can go")
        #expect(try Netns.run(["nstat", "-az", "TcpExtIPReversePathFilter"]).1 != before)
    }

    @Test func pingIsQueuedMarkedAndRoutedIntoTUN() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        let ping = try Netns.start(["ping", "-c", "1", "-W", "3", "203.0.113.5"])
        defer { ping.terminate(); ping.waitUntilExit() }
        let bypass = { (p: QueuedPacket) in QueueVerdict.acceptWithMark(rig.marks.bypassMark(keeping: p.mark)) }

        // [X]: the echo request arrives on the SPD queue at LOCAL_OUT.
        let isPing: (QueuedPacket, [UInt8]) -> Bool = { _, b in Packets.v4Destination(b) == "203.0.113.5" && Packets.v4Protocol(b) == 1 }
        let atX = try #require(rig.spd.await(seconds: 3, otherwise: bypass, isPing))
        #expect(atX.0.hook == 3)  // NF_INET_LOCAL_OUT
        #expect(atX.0.hwProtocol == 0x0800)
        let protect = try #require(rig.marks.protectMark(policy: 5, keeping: atX.0.mark))
        _ = rig.spd.setVerdict(.acceptWithMark(protect), id: atX.0.id)
        #expect(rig.spd.flushVerdicts() != .failed(EINVAL))

        // Re-routed into enc0 by the fwmark rule, past srcnat and conntrack; encd reads
        // it from the TAP, the mark in the frame's destination MAC (enc0's egress table).
        let read = try #require(rig.readTUN(seconds: 3) { Packets.v4Destination($0) == "203.0.113.5" && $0[9] == 1 })
        #expect(read.packet == atX.1)
        #expect(read.mark == protect)
        #expect(rig.marks.policy(of: read.mark) == 5)
        #expect(rig.spd.counters.received >= 1 && rig.spd.counters.verdictErrors == 0)
        let stats = try QueueStats.read()
        #expect(stats.map(\.queue).sorted() == [0], "[X]'s queue alone (IPsec in reads sockets)")
        let listing = try Netns.run(["nft", "list", "table", "netdev", "encd_enc0"]).1
        #expect(listing.contains("@ll,16,32 set meta mark"), "\(listing)")
    }

    /// What routing sends into enc0 has passed conntrack's confirmation (at the end of
    /// postrouting) before encd reads it, so NAT done on enc0 is reversed for replies.
    @Test func aPacketReadFromEnc0HasAConfirmedConntrackEntry() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        // Conntrack only runs once something in the namespace uses it: count new connections.
        let probe = NftTable(name: "encdtest", sets: [], chains: [
            NftChain("ct", base: NftBaseChain(type: "filter", hook: .output, priority: 0), rules: [
                NftRule([.ctMark(mask: .max, .eq, 0)], [.counter]),
            ]),
        ])
        _ = try rig.nft.install(probe)
        defer { try? rig.nft.removeTable(named: "encdtest") }
        let isPing: (QueuedPacket, [UInt8]) -> Bool = { _, b in Packets.v4Destination(b) == "203.0.113.9" && Packets.v4Protocol(b) == 1 }
        _ = try Netns.run(["conntrack", "-F"])
        let ping = try Netns.start(["ping", "-c", "1", "-W", "2", "203.0.113.9"])
        defer { ping.terminate(); ping.waitUntilExit() }
        let atX = try #require(rig.spd.await(seconds: 3, isPing))
        _ = rig.spd.setVerdict(.acceptWithMark(rig.marks.protectMark(policy: 2, keeping: 0)!), id: atX.0.id)
        _ = rig.spd.flushVerdicts()
        #expect(rig.readTUN(seconds: 3) { Packets.v4Destination($0) == "203.0.113.9" } != nil)
        let (_, entries) = try Netns.run(["conntrack", "-L", "-p", "icmp", "-d", "203.0.113.9"])
        #expect(entries.contains("dst=203.0.113.9"), "no conntrack entry for the packet read from enc0")
    }

    @Test func packetWrittenToTUNArrivesOnEnc0AndPassesLooseRPFilter() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        // A test table counts what arrives on enc0, before anything else sees it.
        let probe = NftTable(name: "encdtest", sets: [], chains: [
            NftChain("seen", base: NftBaseChain(type: "filter", hook: .prerouting, priority: -300), rules: [
                NftRule([.iifname(.eq, "enc0")], [.counter]),
            ]),
        ])
        _ = try rig.nft.install(probe)
        defer { try? rig.nft.removeTable(named: "encdtest") }
        #expect(try Sysctl.read("net/ipv4/conf/enc0/rp_filter") == "2")

        #expect(rig.write(Packets.echoRequest(from: "203.0.113.5", to: "198.51.100.1", id: 0x4242)))
        rig.passInjected(id: 0x42)

        // The host answers; the reply meets [X] on its way out (so routing accepted the request).
        let reply = rig.spd.await(seconds: 3) { _, b in
            Packets.v4Destination(b) == "203.0.113.5" && b.count > 24 && b[20] == 0 && b[24] == 0x42 && b[25] == 0x42
        }
        #expect(reply != nil, "no echo reply: the injected request did not get past routing/rp_filter")
        if let reply { _ = rig.spd.setVerdict(.drop, id: reply.0.id); _ = rig.spd.flushVerdicts() }
        #expect(try Netns.counter(table: "encdtest", chain: "seen", containing: "iifname") >= 1)
    }

    @Test func rawSocketWithBypassMarkLeavesWithoutBeingQueuedAgain() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        let sender = try RawSocketSender(mark: rig.marks.bypassMark(keeping: 0))
        let listener = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        #expect(listener >= 0)
        defer { close(listener) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        let buffer = PacketBuffer()
        buffer.load(Packets.echoRequest(from: "198.51.100.1", to: "198.51.100.2", id: 0x5151))
        #expect(sender.send(buffer) == .done(buffer.count))

        // The peer's reply proves it left through e0 ...
        var got = [UInt8](repeating: 0, count: 2048)
        var replied = false
        let deadline = Date().addingTimeInterval(3)
        while !replied && Date() < deadline {
            let n = recv(listener, &got, got.count, 0)
            if n >= 28, got[20] == 0, got[24] == 0x51, got[25] == 0x51 { replied = true }
            if n < 0 { break }
        }
        #expect(replied, "no echo reply from the peer to the raw-socket packet")
        // ... and [X] never saw it.
        let queued = rig.spd.await(seconds: 0.5) { _, b in b.count > 25 && b[24] == 0x51 && b[25] == 0x51 }
        #expect(queued == nil)
    }

    @Test func leakGuardDropsProtectMarkedPacketsWhenEnc0IsGone() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        // enc0 vanishes (its routes with it): table 100 is empty, lookup falls through to main -> e0.
        try rig.routing.setLink(name: "enc0", up: false, mtu: nil)
        let before = try Netns.counter(table: "encd", chain: "ipsec_output", containing: "!= \"enc0\"")
        let mark = try #require(rig.marks.protectMark(policy: 1, keeping: 0))
        let sender = try RawSocketSender(mark: mark)
        let buffer = PacketBuffer()
        buffer.load(Packets.echoRequest(from: "198.51.100.1", to: "198.51.100.2", id: 0x6161))
        let result = sender.send(buffer)
        #expect(result == .failed(EPERM), "a protect-marked packet must not leave on e0 (got \(result))")
        #expect(try Netns.counter(table: "encd", chain: "ipsec_output", containing: "!= \"enc0\"") == before + 1)
    }

    @Test func espInUDPReachesItsSocketAndESPAndAHTheRawSockets() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        let raw = try SocketInputQueue(number: rig.config.inputQueue, waitMilliseconds: 200)
        let ike = try IKESocket()
        // The peer's IPv6 packets carry traffic class 0xb8 (EF) with ECN CE (0xbb) and
        // hop limit 17: the rebuilt header must say so; its IPv4 ESP in UDP TOS 0x2a, TTL 33.
        let script = """
        import socket
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(('0.0.0.0', 4600))
        u.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x2a)
        u.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 33)
        u.sendto(bytes([0, 0, 0, 0]) + b'ike', ('198.51.100.1', 4500))
        u.sendto(bytes([0xff]), ('198.51.100.1', 4500))
        u.sendto(bytes([0, 0, 0x10, 1, 0, 0, 0, 1]) + b'esp-in-udp', ('198.51.100.1', 4500))
        u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0xbb)
        u6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 17)
        u6.bind(('::', 4601))
        u6.sendto(bytes([0, 0, 0x10, 6, 0, 0, 0, 1]) + b'esp-in-udp6', ('2001:db8:1::1', 4500))
        e = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
        e.sendto(bytes([0, 0, 0x20, 2, 0, 0, 0, 1]) + b'esp', ('198.51.100.1', 0))
        a = socket.socket(socket.AF_INET, socket.SOCK_RAW, 51)
        a.sendto(bytes([4, 4, 0, 0, 0, 0, 0x20, 3, 0, 0, 0, 1]) + bytes(16), ('198.51.100.1', 0))
        e6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 50)
        e6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0xbb)
        e6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 17)
        e6.sendto(bytes([0, 0, 0x20, 4, 0, 0, 0, 1]) + b'esp6', ('2001:db8:1::1', 0))
        """
        let (status, out) = try Netns.run(Netns.inPeer(["python3", "-c", script]))
        #expect(status == 0, "\(out)")

        // NAT-T: ESP in UDP reaches encd's socket (tproxy), as it arrived; IKE's zero
        // word goes on to the IKE daemon's socket on 4500, the keepalive is dropped.
        let udpInput = try #require(rig.udpInput)
        let batch = QueueBatch(capacity: 8)
        var udp: [[UInt8]] = []
        var deadline = Date().addingTimeInterval(3)
        while udp.count < 2 && Date() < deadline {
            guard case .done(let n) = udpInput.receive(into: batch, wait: true) else { continue }
            for i in 0..<n { udp.append(batch.buffers[i].array) }
        }
        let udp4 = try #require(udp.first { $0[0] >> 4 == 4 })
        #expect(udp4.count == 28 + 18)
        #expect(Array(udp4[0..<4]) == [0x45, 0x2a, 0, 46] && udp4[8] == 33 && udp4[9] == 17)
        #expect(Checksum.compute(udp4.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[0..<20]) }) == 0, "IPv4 header checksum")
        #expect(Array(udp4[12..<20]) == [198, 51, 100, 2, 198, 51, 100, 1])
        #expect(Array(udp4[20..<26]) == [0x11, 0xf8, 0x11, 0x94, 0, 26])    // 4600 -> 4500, length
        #expect(Array(udp4[28..<32]) == [0, 0, 0x10, 1])
        let udp6 = try #require(udp.first { $0[0] >> 4 == 6 })
        #expect(udp6.count == 48 + 19)
        #expect(udp6[0] == 0x6b && udp6[1] >> 4 == 0xb)
        #expect(Array(udp6[4..<8]) == [0, 27, 17, 17])                       // payload length, UDP, hop limit
        #expect(Array(udp6[8..<24]) == Array(IPAddress("2001:db8:1::2")!.bytes))
        #expect(Array(udp6[24..<40]) == Array(IPAddress("2001:db8:1::1")!.bytes))
        #expect(Array(udp6[40..<46]) == [0x11, 0xf9, 0x11, 0x94, 0, 27])
        #expect(Array(udp6[48..<52]) == [0, 0, 0x10, 6])
        #expect(ike.received() == [[0, 0, 0, 0] + Array("ike".utf8)], "the IKE daemon's socket gets IKE alone")
        #expect(try Netns.counter(table: "encd", chain: "ipsec_input", containing: "length 9") == 1)
        #expect(try Netns.counter(table: "encd", chain: "ipsec_input", containing: "!= 0x0 counter") == 2, "ESP in UDP")

        // ESP and AH: on the raw sockets, after the input hook, whole packets.
        var got: [[UInt8]] = []
        deadline = Date().addingTimeInterval(3)
        while got.count < 3 && Date() < deadline {
            guard case .done(let n) = raw.receive(into: batch, wait: true) else { continue }
            for i in 0..<n { got.append(batch.buffers[i].array) }
        }
        let esp4 = try #require(got.first { $0[0] >> 4 == 4 && $0[9] == 50 })
        #expect(esp4.count == 20 + 11 && Array(esp4[20..<24]) == [0, 0, 0x20, 2])
        #expect(Array(esp4[12..<20]) == [198, 51, 100, 2, 198, 51, 100, 1])
        let ah4 = try #require(got.first { $0[0] >> 4 == 4 && $0[9] == 51 })
        #expect(Array(ah4[24..<28]) == [0, 0, 0x20, 3])
        let esp6 = try #require(got.first { $0[0] >> 4 == 6 })
        #expect(esp6.count == 40 + 12)
        #expect(esp6[0] == 0x6b && esp6[1] >> 4 == 0xb)           // version 6, traffic class 0xbb (then the flow label)
        #expect(Array(esp6[4..<8]) == [0, 12, 50, 17])             // payload length, next header ESP, hop limit
        #expect(Array(esp6[8..<24]) == Array(IPAddress("2001:db8:1::2")!.bytes))
        #expect(Array(esp6[24..<40]) == Array(IPAddress("2001:db8:1::1")!.bytes))
        #expect(Array(esp6[40..<44]) == [0, 0, 0x20, 4])
        #expect(try Netns.counter(table: "encd", chain: "ipsec_input", containing: "esp counter") >= 2)
    }

    /// A run the device cannot take (its datagrams larger than the MTU) is refused whole
    /// by the kernel and sent again datagram by datagram: each one counted too big, as a
    /// raw send would be; runs of datagrams that fit still go out as runs afterwards.
    @Test func aRunTooBigForTheDeviceIsCountedPerDatagram() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        #expect(try Netns.run(["ip", "link", "set", "e0", "mtu", "1300"]).0 == 0)   // not below 1280: IPv6 would go
        defer { _ = try? Netns.run(["ip", "link", "set", "e0", "mtu", "1500"]) }
        let sender = UDPEncapSender(raw: try RawSocketSender(mark: rig.marks.bypassMark(keeping: 0)))
        func datagram(_ size: Int) -> PacketBuffer {
            let total = 28 + size
            let b = PacketBuffer()
            b.load([0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0x40, 0, 64, 17, 0, 0,
                    198, 51, 100, 1, 198, 51, 100, 2, 0x11, 0x94, 0x11, 0x94, UInt8((size + 8) >> 8), UInt8((size + 8) & 0xff), 0, 0]
                   + [UInt8](repeating: 0xee, count: size))
            return b
        }
        for _ in 0..<5 { _ = sender.send(datagram(1300)) }
        let refused = sender.flush()
        #expect(refused.tooBig == 5 && refused.sent == 0 && refused.runs == 0, "\(refused)")
        for _ in 0..<5 { _ = sender.send(datagram(1000)) }
        let fitting = sender.flush()
        #expect(fitting.sent == 5 && fitting.runs == 1, "runs still used after a refused one: \(fitting)")
    }

    /// Without encd's UDP sockets (encd not running, its table left in place), ESP in
    /// UDP for this host is dropped in ipsec_input_udp: it does not reach the IKE
    /// daemon's socket on the NAT-T port, which IKE still reaches.
    @Test func espInUDPIsDroppedWithoutEncdsSocket() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        rig.udpInput = nil
        let ike = try IKESocket()
        let script = """
        import socket
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(3):
            u.sendto(bytes([0, 0, 0x10, 1, 0, 0, 0, i + 1]) + b'esp-in-udp', ('198.51.100.1', 4500))
        u.sendto(bytes([0, 0, 0, 0]) + b'ike', ('198.51.100.1', 4500))
        u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u6.sendto(bytes([0, 0, 0x10, 6, 0, 0, 0, 1]) + b'esp-in-udp6', ('2001:db8:1::1', 4500))
        """
        let (status, out) = try Netns.run(Netns.inPeer(["python3", "-c", script]))
        #expect(status == 0, "\(out)")
        #expect(ike.received() == [[0, 0, 0, 0] + Array("ike".utf8)])
        #expect(try Netns.counter(table: "encd", chain: "ipsec_input_udp", containing: "drop") == 4, "no encd socket")
    }

    /// Several ipsec-in workers: each one's raw sockets keep the SPIs of its share
    /// (WorkerShare's SPI hash; the filter computes it as the stage does), for ESP and AH, IPv4 and IPv6; a packet too short for an SPI is
    /// worker 0's. The kernel copies every packet to both, so nothing else is lost.
    @Test func rawInputSocketsOfTwoWorkersSplitTheSPIs() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        let shares = WorkerShare.all(2)
        let readers = try shares.map { try SocketInputQueue(number: rig.config.inputQueue, share: $0, waitMilliseconds: 200) }
        let script = """
        import socket
        e = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
        a = socket.socket(socket.AF_INET, socket.SOCK_RAW, 51)
        e6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 50)
        for i in range(8):
            e.sendto(bytes([0, 0, 0x20, i, 0, 0, 0, 1]) + b'esp', ('198.51.100.1', 0))
            a.sendto(bytes([4, 4, 0, 0, 0, 0, 0x30, i, 0, 0, 0, 1]) + bytes(16), ('198.51.100.1', 0))
            e6.sendto(bytes([0, 0, 0x40, i, 0, 0, 0, 1]) + b'esp6', ('2001:db8:1::1', 0))
        e.sendto(bytes([0, 0, 0x50]), ('198.51.100.1', 0))
        e6.sendto(bytes([0, 0, 0x60]), ('2001:db8:1::1', 0))
        """
        let (status, out) = try Netns.run(Netns.inPeer(["python3", "-c", script]))
        #expect(status == 0, "\(out)")
        let batch = QueueBatch(capacity: 64)
        for (share, reader) in zip(shares, readers) {
            var spis: [UInt32] = []
            var short = 0
            let deadline = Date().addingTimeInterval(2)
            while Date() < deadline {
                guard case .done(let n) = reader.receive(into: batch, wait: true) else { continue }
                for i in 0..<n {
                    let p = batch.buffers[i].array
                    let header = p[0] >> 4 == 4 ? 20 : 40
                    let at = header + ((p[0] >> 4 == 4 ? p[9] : p[6]) == 51 ? 4 : 0)
                    if p.count < at + 4 { short += 1; continue }
                    spis.append(p[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) })
                }
            }
            var expected: [UInt32] = []
            for i in UInt32(0)..<8 {
                expected += [0x2000 + i, 0x3000 + i, 0x4000 + i].filter { share.owns(spi: $0) }
            }
            #expect(spis.sorted() == expected.sorted(), "worker \(share)")
            #expect(expected.count >= 6, "the hash should spread 24 SPIs over two workers")
            #expect(short == (share.index == 0 ? 2 : 0), "worker \(share): \(short) short packets")
            #expect(reader.counters.overruns == 0 && reader.counters.malformed == 0)
        }
    }

    /// Several ipsec-out workers: enc0 is a multi-queue TAP whose steering program sends
    /// every frame to queue (SA number % queues), the SA number [X] put in the mark.
    @Test func enc0SteersEachSAsPacketsToOneQueue() throws {
        let rig = try Rig(queues: 2)
        defer { try? rig.tearDown() }
        let marks = (1...6).map { rig.marks.protectMark(policy: UInt32($0), keeping: 0)! }
        let script = """
        import socket
        for m in [\(marks.map(String.init).joined(separator: ", "))]:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, m)
            for i in range(5):
                u.sendto(b'steer', ('203.0.113.7', 7000 + i))
        """
        let (status, out) = try Netns.run(["python3", "-c", script])
        #expect(status == 0, "\(out)")
        for q in 0..<2 {
            var policies: [UInt32] = []
            while let read = rig.readTUN(seconds: 1, queue: q, { Packets.v4Destination($0) == "203.0.113.7" }) {
                policies.append(rig.marks.policy(of: read.mark) ?? 0)
            }
            var expected: [UInt32] = []
            for policy in UInt32(1)...6 where policy % 2 == UInt32(q) { expected += [UInt32](repeating: policy, count: 5) }
            #expect(policies.sorted() == expected, "queue \(q)")
        }
    }

    @Test func socketInputReceivesWithoutAllocating() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        let raw = try SocketInputQueue(number: rig.config.inputQueue, waitMilliseconds: 200)
        let udp = try #require(rig.udpInput)
        let script = """
        import socket
        e = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
        e6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 50)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        for i in range(300):
            e.sendto(bytes([0, 0, 0x20, 2]) + i.to_bytes(4, 'big') + bytes(100), ('198.51.100.1', 0))
            e6.sendto(bytes([0, 0, 0x20, 4]) + i.to_bytes(4, 'big') + bytes(100), ('2001:db8:1::1', 0))
            u.sendto(bytes([0, 0, 0x10, 2]) + i.to_bytes(4, 'big') + bytes(100), ('198.51.100.1', 4500))
            u6.sendto(bytes([0, 0, 0x10, 4]) + i.to_bytes(4, 'big') + bytes(100), ('2001:db8:1::1', 4500))
        """
        let (status, out) = try Netns.run(Netns.inPeer(["python3", "-c", script]))
        #expect(status == 0, "\(out)")
        let batch = QueueBatch(capacity: 32)
        for (name, queue) in [("raw", raw), ("udp", udp)] {
            var total = 0
            if case .done(let n) = queue.receive(into: batch, wait: true) { total += n }     // warm-up
            let before = encalloc_thread_allocations()
            var calls = 0
            while calls < 100, case .done(let n) = queue.receive(into: batch, wait: false) {
                total += n
                calls += 1
            }
            let allocations = encalloc_thread_allocations() - before
            #expect(total == 600, "\(name): received \(total) of 600")
            #expect(allocations == 0, "\(name): \(allocations) allocations in \(calls) receives")
            #expect(queue.counters.malformed == 0 && queue.counters.overruns == 0)
        }
    }

    /// ESP in UDP sent as runs (UDPEncapSender): the peer's socket reads every datagram,
    /// from the NAT-T port and the host's address, in order and of its size; the IKE
    /// daemon's wildcard socket on the same port still gets the peer's IKE; a run of
    /// IPv4 and one of IPv6 are one send each, and the sends after the first allocate
    /// nothing.
    @Test func udpEncapsulatedESPLeavesInRunsWithoutTakingTheIKEPort() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        let ike = try IKESocket()     // as encd-iked opens them (wildcard, SO_REUSEADDR)
        let out = "/tmp/encd-udpencap-\(getpid()).txt"
        defer { unlink(out) }
        // The peer reads 6 + 2 x 12 datagrams (or gives up after 5 s), answers each family
        // with an IKE message (zero marker) to port 4500, and writes what it read.
        let script = """
        import socket, select, sys, time
        s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s4.bind(('0.0.0.0', 4500))
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); s6.bind(('::', 4500))
        got = []
        end = time.time() + 5
        while len(got) < 30 and time.time() < end:
            r, _, _ = select.select([s4, s6], [], [], 0.2)
            for s in r:
                d, a = s.recvfrom(65535)
                got.append('%s %d %d %d' % (a[0], a[1], len(d), d[0]))
        s4.sendto(bytes(4) + b'ike', ('198.51.100.1', 4500))
        s6.sendto(bytes(4) + b'ike', ('2001:db8:1::1', 4500))
        open(sys.argv[1], 'w').write('\\n'.join(got) + '\\n')
        """
        let peer = try Netns.start(Netns.inPeer(["python3", "-c", script, out]))
        usleep(500_000)
        let sender = UDPEncapSender(raw: try RawSocketSender(mark: rig.marks.bypassMark(keeping: 0)))
        func packet(v6: Bool, tag: UInt8, size: Int) -> PacketBuffer {
            let udp: [UInt8] = [0x11, 0x94, 0x11, 0x94, UInt8((size + 8) >> 8), UInt8((size + 8) & 0xff), 0, 0]
            let esp = [tag] + [UInt8](repeating: 0xee, count: size - 1)
            let buffer = PacketBuffer()
            if v6 {
                let plen = size + 8
                let h: [UInt8] = [0x60, 0, 0, 0, UInt8(plen >> 8), UInt8(plen & 0xff), 17, 64]
                    + [0x20, 0x01, 0x0d, 0xb8, 0, 1] + [UInt8](repeating: 0, count: 9) + [1]
                    + [0x20, 0x01, 0x0d, 0xb8, 0, 1] + [UInt8](repeating: 0, count: 9) + [2]
                buffer.load(h + udp + esp)
            } else {
                let total = 28 + size
                let h: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0x40, 0, 64, 17, 0, 0,
                                  198, 51, 100, 1, 198, 51, 100, 2]
                buffer.load(h + udp + esp)
            }
            return buffer
        }
        // A datagram of each family opens the sockets, a run of each warms the path up;
        // then two runs of 12 (11 x 1000 bytes and a shorter last) without allocating.
        #expect(sender.send(packet(v6: false, tag: 99, size: 100)) == .done(128))
        #expect(sender.flush().sent == 1)
        #expect(sender.boundPorts.count == 1)
        _ = sender.send(packet(v6: true, tag: 99, size: 100))
        #expect(sender.flush().sent == 1)
        #expect(sender.boundPorts.count == 2, "no socket for IPv6: \(sender.boundPorts)")
        let warmUp = [false, true].flatMap { v6 in (0..<2).map { _ in packet(v6: v6, tag: 99, size: 100) } }
        for p in warmUp { _ = sender.send(p) }
        #expect(sender.flush().runs == 2)
        let runs = [false, true].flatMap { v6 in (0..<12).map { packet(v6: v6, tag: UInt8($0 + 1), size: $0 == 11 ? 300 : 1000) } }
        let before = encalloc_thread_allocations()
        for i in 0..<runs.count { _ = sender.send(runs[i]) }    // (an iterator, or `indices` at first use, allocates in debug builds)
        let tally = sender.flush()
        let allocations = encalloc_thread_allocations() - before
        #expect(tally.sent == 24 && tally.runs == 2 && tally.full == 0 && tally.failed == 0 && tally.tooBig == 0, "\(tally)")
        #expect(allocations == 0, "\(allocations) allocations for two runs")
        peer.waitUntilExit()
        let lines = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        let want4 = (0..<12).map { "198.51.100.1 4500 \($0 == 11 ? 300 : 1000) \($0 + 1)" }
        let want6 = (0..<12).map { "2001:db8:1::1 4500 \($0 == 11 ? 300 : 1000) \($0 + 1)" }
        #expect(lines.filter { !$0.hasSuffix(" 99") && !$0.contains(":") } == want4)
        #expect(lines.filter { !$0.hasSuffix(" 99") && $0.contains(":") } == want6)
        // The peer's IKE reached the IKE daemon's sockets, not encd's.
        let message = [0, 0, 0, 0] + Array("ike".utf8)
        #expect(ike.received() == [message, message], "IKE on the IKE daemon's IPv4 and IPv6 sockets")
    }

    @Test func forgedICMPErrorsDoNotStopTheRawInput() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        let raw = try SocketInputQueue(number: rig.config.inputQueue, waitMilliseconds: 200)
        // Forged ICMP "protocol unreachable" quoting an ESP packet this host "sent": the
        // kernel must not turn them into errors on the raw ESP socket (it reports them
        // only to connected sockets or with IP_RECVERR), the next ESP packet must arrive,
        // and the receive must not fail (the worker backs off on failures).
        let script = """
        import socket, struct
        def csum(b):
            s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
            s = (s >> 16) + (s & 0xffff); s += s >> 16
            return (~s) & 0xffff
        quoted = bytes([0x45, 0, 0, 48, 0, 1, 0x40, 0, 64, 50, 0, 0, 198, 51, 100, 1, 198, 51, 100, 2]) + bytes([0, 0, 0x20, 2, 0, 0, 0, 9])
        icmp = bytearray([3, 2, 0, 0, 0, 0, 0, 0]) + quoted
        icmp[2:4] = struct.pack('!H', csum(bytes(icmp)))
        i = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        for _ in range(5):
            i.sendto(bytes(icmp), ('198.51.100.1', 0))
        e = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
        e.sendto(bytes([0, 0, 0x20, 2, 0, 0, 0, 1]) + b'esp', ('198.51.100.1', 0))
        """
        let (status, out) = try Netns.run(Netns.inPeer(["python3", "-c", script]))
        #expect(status == 0, "\(out)")
        let batch = QueueBatch(capacity: 8)
        var esp = 0, failures: [IOResult] = []
        let deadline = Date().addingTimeInterval(3)
        while esp == 0 && Date() < deadline {
            switch raw.receive(into: batch, wait: true) {
            case .done(let n): esp += n
            case .failed(let e): failures.append(.failed(e))
            case .wouldBlock: break
            }
        }
        #expect(esp == 1)
        #expect(failures.isEmpty, "receive failed: \(failures)")
        #expect(raw.counters.socketErrors == 0)
    }

    @Test func requireSetDropsCleartextThatDidNotComeThroughEnc0() throws {
        let rig = try Rig()
        defer { try? rig.tearDown() }
        let table = EncdRuleset.table(rig.config)
        let requireSet = try #require(table.sets.first { $0.name == EncdRuleset.requireSet4 })
        try rig.nft.replaceElements(of: requireSet, table: "encd",
                                    pairs: [(IPPrefix("198.51.100.0/24")!, IPPrefix("198.51.100.1")!)])
        let (_, listing) = try Netns.run(["nft", "list", "set", "inet", "encd", "require_in4"])
        #expect(listing.contains("198.51.100.0/24 . 198.51.100.1"), "\(listing)")
        let (status, _) = try Netns.run(Netns.inPeer(["ping", "-c", "1", "-W", "1", "198.51.100.1"]))
        #expect(status != 0)
        #expect(try Netns.counter(table: "encd", chain: "require_in", containing: "@require_in4") >= 1)
        // Emptied again: the set accepts a flush.
        try rig.nft.replaceElements(of: requireSet, table: "encd", pairs: [])
        let (_, after) = try Netns.run(["nft", "list", "set", "inet", "encd", "require_in4"])
        #expect(!after.contains("198.51.100.1"))
    }

    @Test func pathMTUIsTheRoutesMetricOrItsInterfacesMTU() throws {
        let routing = try Rtnetlink()
        let peer = IPAddress("198.51.100.2")!, peer6 = IPAddress("2001:db8:1::2")!
        let mtu = try Netns.run(["cat", "/sys/class/net/e0/mtu"]).1.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try routing.pathMTU(to: peer, from: IPAddress("198.51.100.1")!, mark: 0x10000) == UInt32(mtu))
        #expect(try routing.pathMTU(to: peer6, from: nil, mark: 0) == UInt32(mtu))
        // A host route with an MTU metric (as a PPPoE link or a learned path MTU gives).
        _ = try Netns.run(["ip", "route", "add", "198.51.100.2/32", "dev", "e0", "mtu", "1300"])
        defer { _ = try? Netns.run(["ip", "route", "del", "198.51.100.2/32", "dev", "e0"]) }
        #expect(try routing.pathMTU(to: peer, from: nil, mark: 0x10000) == 1300)
        // An unreachable destination: the kernel's error, named.
        _ = try Netns.run(["ip", "route", "add", "unreachable", "203.0.113.77/32"])
        defer { _ = try? Netns.run(["ip", "route", "del", "unreachable", "203.0.113.77/32"]) }
        #expect(throws: SystemError.self) { try routing.pathMTU(to: IPAddress("203.0.113.77")!, from: nil, mark: 0) }
    }
}
