// The packet path allocates nothing in steady state (STYLE.md habit 3), pinned for
// ESP and AH, both directions, tunnel and transport, IPv4 and IPv6, with and without
// ESN and NAT-T. CAllocCounter replaces malloc in this test binary; the per-thread
// count is used, so tests running in parallel on other threads do not disturb it.
// Each case warms up (first-use work such as metadata instantiation is allowed to
// allocate), then runs `packets` outbound and `packets` inbound packets through one
// reused PacketBuffer per direction and expects exactly zero new allocations.

import CAllocCounter
import Crypto
import EncCore
import IPsec
import Testing

struct PathCase: CustomTestStringConvertible, Sendable {
    let encryption: String?        // nil: AH
    let integrity: String?
    let mode: IPsecMode
    let inet6: Bool
    let esn: Bool
    let natT: Bool
    var testDescription: String {
        "\(encryption.map { "esp \($0)" } ?? "ah") \(integrity ?? "") \(mode) \(inet6 ? "v6" : "v4")"
            + (esn ? " esn" : "") + (natT ? " udpencap" : "")
    }
}

nonisolated(unsafe) var escapingSink: [Int] = []

@Suite struct SteadyStateAllocationTests {
    static let packets = 2_000
    static let ring = 64

    static let cases: [PathCase] = [
        PathCase(encryption: "aes-128-gcm", integrity: nil, mode: .tunnel, inet6: false, esn: false, natT: false),
        PathCase(encryption: "aes-128", integrity: "hmac-sha2-256", mode: .tunnel, inet6: false, esn: false, natT: false),
        PathCase(encryption: "aes-256-gcm", integrity: nil, mode: .tunnel, inet6: true, esn: true, natT: false),
        PathCase(encryption: "chacha20-poly1305", integrity: nil, mode: .tunnel, inet6: false, esn: false, natT: true),
        PathCase(encryption: "aes-128-ctr", integrity: "hmac-sha1", mode: .transport, inet6: false, esn: true, natT: true),
        PathCase(encryption: "aes-256", integrity: "hmac-sha2-512", mode: .transport, inet6: true, esn: false, natT: false),
        PathCase(encryption: "aes-128-gmac", integrity: nil, mode: .tunnel, inet6: false, esn: false, natT: false),
        PathCase(encryption: nil, integrity: "hmac-sha2-256", mode: .tunnel, inet6: false, esn: false, natT: false),
        PathCase(encryption: nil, integrity: "hmac-sha2-384", mode: .transport, inet6: true, esn: true, natT: false),
    ]

    @Test func counterSeesAnArrayAllocatedOnThisThread() {
        let before = encalloc_thread_allocations()
        escapingSink = [Int](repeating: 1, count: 100)
        #expect(encalloc_thread_allocations() > before)
        escapingSink = []
    }

    @Test(arguments: cases)
    func steadyStatePacketPathAllocatesNothing(_ c: PathCase) throws {
        let path = try PathUnderTest(c)
        path.run(Self.ring * 2)                       // warm-up: first use may allocate
        let before = encalloc_thread_allocations()
        let (sent, received) = path.run(Self.packets)
        let allocations = encalloc_thread_allocations() - before
        #expect(sent == Self.packets && received == Self.packets, "every packet must pass, or the path measured is a drop path")
        #expect(allocations == 0, "\(allocations) allocations in \(Self.packets) packets each way")
        // The counter was live on this thread all along.
        escapingSink = [Int](repeating: 1, count: 10)
        #expect(encalloc_thread_allocations() > before)
    }
}

/// One outbound SA, its inbound twin, a template packet and a ring of protected
/// packets (numbers 1...ring), all built before anything is counted.
final class PathUnderTest {
    let c: PathCase
    let out: SecurityAssociation
    let inbound: SecurityAssociation
    let sad: SAD
    let template: [UInt8]
    let wire: [[UInt8]]
    let outBuffer = PacketBuffer()
    let inBuffer = PacketBuffer()
    let stats = CounterBlock<Counter>()
    var next = 0

    init(_ c: PathCase) throws {
        self.c = c
        let a = IPAddress(c.inet6 ? "2001:db8::1" : "192.0.2.1")!
        let b = IPAddress(c.inet6 ? "2001:db8::2" : "192.0.2.2")!
        let enc = c.encryption.map { EncryptionAlgorithm.named($0)! }
        let auth = c.integrity.map { IntegrityAlgorithm.named($0)! }
        func key(_ bits: Int, _ seed: UInt8) -> SecretKey { SecretKey((0..<(bits / 8)).map { seed &+ UInt8($0) }) }
        let spec = SASpec(proto: enc == nil ? .ah : .esp, mode: c.mode, source: a, destination: b, spi: 0x4242,
                          encapsulation: c.natT ? UDPEncapsulation() : nil,
                          encryption: enc, encryptionKey: enc.map { key($0.keyBits.upperBound + $0.cipher.saltBits, 1) },
                          integrity: auth, integrityKey: auth.map { key($0.keyBits, 2) },
                          replayWindow: 128, extendedSequence: c.esn)
        let ringSender = try SecurityAssociation(spec, direction: .outbound, store: nil, now: 0)
        out = try SecurityAssociation(spec, direction: .outbound, store: nil, now: 0)
        inbound = try SecurityAssociation(spec, direction: .inbound, store: nil, now: 0)
        sad = SAD([inbound])
        let (src, dst) = c.mode == .tunnel
            ? (IPAddress(c.inet6 ? "2001:db8:a::10" : "198.18.1.10")!, IPAddress(c.inet6 ? "2001:db8:b::20" : "198.18.2.20")!)
            : (a, b)
        template = PacketBuilder.udp(source: src, destination: dst, sourcePort: 1000, destinationPort: 2000,
                                     payload: [UInt8](repeating: 0xa5, count: 1300))
        var ring: [[UInt8]] = []
        for _ in 0..<SteadyStateAllocationTests.ring {
            let b = PacketBuffer(packet: template)
            let r = enc == nil ? AH.output(b, sa: ringSender, now: 1, stats: stats)
                               : ESPOutput.process(b, sa: ringSender, now: 1, stats: stats)
            guard r == .send else { throw SAError("ring packet dropped: \(r)") }
            ring.append(b.array)
        }
        wire = ring
    }

    /// Sends `count` packets out and takes `count` packets in; returns how many of
    /// each came through. The inbound window is emptied when the ring wraps, so
    /// every packet is new to it.
    @discardableResult
    func run(_ count: Int) -> (Int, Int) {
        var sent = 0, received = 0
        let isAH = c.encryption == nil
        template.withUnsafeBytes { t in
            for _ in 0..<count {
                outBuffer.load(t)
                let r = isAH ? AH.output(outBuffer, sa: out, now: 1, stats: stats)
                             : ESPOutput.process(outBuffer, sa: out, now: 1, stats: stats)
                if r == .send { sent += 1 }
            }
        }
        for _ in 0..<count {
            if next == 0 { inbound.replay.reset(top: 0) }
            wire[next].withUnsafeBytes { _ = inBuffer.load($0) }
            let r = isAH ? AH.input(inBuffer, sad: sad, now: 1, stats: stats)
                         : ESPInput.process(inBuffer, sad: sad, now: 1, stats: stats)
            if case .decapsulated = r, inBuffer.count == template.count { received += 1 }
            next = (next + 1) % wire.count
        }
        return (sent, received)
    }
}

/// UDPSegmentBatch (the ipsec-out worker's runs of ESP-in-UDP) reads headers and
/// appends payloads without allocating.
@Test func udpSegmentBatchAppendsWithoutAllocating() {
    var packet: [UInt8] = [0x45, 0, 0x04, 0x1c, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2,
                           0x11, 0x94, 0x11, 0x94, 0x04, 0x08, 0, 0]
    packet += [UInt8](repeating: 0xee, count: 1024)
    let batch = UDPSegmentBatch()
    var added = 0
    packet.withUnsafeMutableBytes { p in
        for _ in 0..<3 {
            if let (h, start) = UDPSegmentBatch.header(of: p), batch.append(p, header: h, payloadStart: start) == .added { added += 1 }
        }
        batch.reset()
        let before = encalloc_thread_allocations()
        var headers = encalloc_thread_allocations()
        for i in 0..<200 {
            if i % 50 == 0 { batch.reset() }
            let read = UDPSegmentBatch.header(of: p)
            if i == 0 { headers = encalloc_thread_allocations() - before }
            if let (h, start) = read, batch.append(p, header: h, payloadStart: start) == .added { added += 1 }
        }
        let n = encalloc_thread_allocations() - before
        #expect(n == 0, "\(n) allocations in 200 appends (\(headers) in the first header read)")
    }
    #expect(added == 203)
}

