// Decrypted TCP segments written into enc0 as GSO frames (issue #9): the merged frame,
// cut up again the way the kernel's GSO does it, gives back exactly the segments that
// went in; anything a run may not hold is written as it came.

import EncCore
import IPsec
import Kernel
import Testing
@testable import Daemon

/// Ethernet + IPv4 or IPv6 + TCP frames with valid checksums, built here without
/// EncCore's checksum code.
enum Frames {
    static func sum(_ b: [UInt8], _ from: Int, _ n: Int, _ start: UInt32 = 0) -> UInt32 {
        var s = start, i = from
        while i < from + n {
            s += UInt32(b[i]) << 8 | (i + 1 < from + n ? UInt32(b[i + 1]) : 0)
            i += 2
        }
        return s
    }
    static func fold(_ s: UInt32) -> UInt16 {
        var s = s
        while s >> 16 != 0 { s = (s & 0xffff) + (s >> 16) }
        return UInt16(s)
    }
    static func put16(_ b: inout [UInt8], _ at: Int, _ v: UInt16) { b[at] = UInt8(v >> 8); b[at + 1] = UInt8(v & 0xff) }
    static func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
        for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> UInt32(24 - 8 * i)) }
    }

    /// Recomputes the IPv4 header checksum and the TCP checksum of `b`.
    static func fixChecksums(_ b: inout [UInt8], v6: Bool) {
        let l3 = 14, t = v6 ? 54 : 34
        if !v6 {
            put16(&b, l3 + 10, 0)
            put16(&b, l3 + 10, ~fold(sum(b, l3, 20)))
        }
        put16(&b, t + 16, 0)
        let tcpLength = b.count - t
        var pseudo = UInt32(tcpLength) + 6
        pseudo = v6 ? sum(b, l3 + 8, 32, pseudo) : sum(b, l3 + 12, 8, pseudo)
        put16(&b, t + 16, ~fold(sum(b, t, tcpLength, pseudo)))
    }

    static func tcp(v6: Bool = false, sa: UInt8 = 7, seq: UInt32, id: UInt16 = 0, payload: Int, flags: UInt8 = 0x10,
                    ack: UInt32 = 5000, window: UInt16 = 512, ttl: UInt8 = 63,
                    options: [UInt8] = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 4]) -> [UInt8] {
        var b: [UInt8] = [0x02, 0x65, 0x6e, 0x63, 0x30, 0x00, 0x06, 0x65, 0x6e, 0, 0, sa] + (v6 ? [0x86, 0xdd] : [0x08, 0x00])
        let thl = 20 + options.count
        if v6 {
            b += [0x60, 0, 0, 0] + [0, 0] + [6, ttl]
            put16(&b, 18, UInt16(thl + payload))
            b += [0x20, 0x01, 0x0d, 0xb8, 0, 1] + [UInt8](repeating: 0, count: 9) + [0x10]
            b += [0x20, 0x01, 0x0d, 0xb8, 0, 2] + [UInt8](repeating: 0, count: 9) + [0x20]
        } else {
            b += [0x45, 0, 0, 0, 0, 0, 0x40, 0, ttl, 6, 0, 0, 198, 18, 1, 10, 198, 18, 2, 20]
            put16(&b, 16, UInt16(20 + thl + payload))
            put16(&b, 18, id)
        }
        let t = b.count
        b += [0x9c, 0x40, 0x13, 0x89] + [0, 0, 0, 0] + [0, 0, 0, 0] + [UInt8(thl / 4) << 4, flags] + [0, 0] + [0, 0, 0, 0]
        put32(&b, t + 4, seq)
        put32(&b, t + 8, ack)
        put16(&b, t + 14, window)
        b += options
        b += (0..<payload).map { UInt8(truncatingIfNeeded: Int(seq) &+ $0) }
        fixChecksums(&b, v6: v6)
        return b
    }

    static func udp(v6: Bool = false, sa: UInt8 = 7, id: UInt16 = 0, payload: Int, sport: UInt16 = 40000) -> [UInt8] {
        var b = Array(tcp(v6: v6, sa: sa, seq: 0, id: id, payload: 0, options: []).prefix(v6 ? 54 : 34))
        if v6 { b[20] = 17; put16(&b, 18, UInt16(8 + payload)) } else { b[23] = 17; put16(&b, 16, UInt16(28 + payload)) }
        let u = b.count
        b += [0, 0, 0x27, 0x0f, 0, 0, 0, 0]
        put16(&b, u, sport)
        put16(&b, u + 4, UInt16(8 + payload))
        b += (0..<payload).map { UInt8(truncatingIfNeeded: Int(id) &+ $0) }
        if !v6 { put16(&b, 24, 0); put16(&b, 24, ~fold(sum(b, 14, 20))) }
        var pseudo = UInt32(8 + payload) + 17
        pseudo = v6 ? sum(b, 22, 32, pseudo) : sum(b, 26, 8, pseudo)
        put16(&b, u + 6, ~fold(sum(b, u, 8 + payload, pseudo)))
        return b
    }

    /// GSO_UDP_L4 segmentation: datagrams of gso_size, IPv4 ids counting up, lengths
    /// and checksums done.
    static func segmentUDP(_ w: [UInt8]) -> [[UInt8]] {
        let hdr = Array(w.prefix(10)), f = Array(w.dropFirst(10))
        let hdrLen = Int(hdr[2]) | Int(hdr[3]) << 8, gso = Int(hdr[4]) | Int(hdr[5]) << 8
        let v6 = f[12] == 0x86, u = hdrLen - 8
        let head = Array(f.prefix(hdrLen)), data = Array(f.dropFirst(hdrLen))
        let id = UInt16(f[18]) << 8 | UInt16(f[19])
        var out: [[UInt8]] = []
        var at = 0, k = 0
        while at < data.count {
            let n = min(gso, data.count - at)
            var b = head + data[at..<(at + n)]
            put16(&b, u + 4, UInt16(8 + n))
            if v6 { put16(&b, 18, UInt16(8 + n)) } else {
                put16(&b, 16, UInt16(28 + n)); put16(&b, 18, id &+ UInt16(k))
                put16(&b, 24, 0); put16(&b, 24, ~fold(sum(b, 14, 20)))
            }
            put16(&b, u + 6, 0)
            var pseudo = UInt32(8 + n) + 17
            pseudo = v6 ? sum(b, 22, 32, pseudo) : sum(b, 26, 8, pseudo)
            put16(&b, u + 6, ~fold(sum(b, u, 8 + n, pseudo)))
            out.append(b)
            at += n
            k += 1
        }
        return out
    }

    /// A run of `count` full segments of `size` bytes (and a `last`-byte one), PSH on
    /// the last.
    static func run(v6: Bool = false, count: Int, size: Int, last: Int? = nil, seq: UInt32 = 1_000_000, id: UInt16 = 77) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var s = seq
        for i in 0..<count {
            let n = i == count - 1 ? (last ?? size) : size
            out.append(tcp(v6: v6, seq: s, id: id &+ UInt16(i), payload: n, flags: i == count - 1 ? 0x18 : 0x10))
            s &+= UInt32(n)
        }
        return out
    }

    /// The kernel's GSO for a TCP frame behind a virtio_net_hdr: segments of gso_size,
    /// sequence numbers and IPv4 ids counting up, PSH only on the last, checksums done.
    static func segment(_ w: [UInt8]) -> [[UInt8]] {
        let hdr = Array(w.prefix(10)), f = Array(w.dropFirst(10))
        let hdrLen = Int(hdr[2]) | Int(hdr[3]) << 8, gso = Int(hdr[4]) | Int(hdr[5]) << 8
        let v6 = f[12] == 0x86
        let t = v6 ? 54 : 34
        let head = Array(f.prefix(hdrLen)), data = Array(f.dropFirst(hdrLen))
        let seq = UInt32(f[t + 4]) << 24 | UInt32(f[t + 5]) << 16 | UInt32(f[t + 6]) << 8 | UInt32(f[t + 7])
        let id = UInt16(f[18]) << 8 | UInt16(f[19])
        var out: [[UInt8]] = []
        var at = 0, k = 0
        while at < data.count {
            let n = min(gso, data.count - at)
            var b = head + data[at..<(at + n)]
            if v6 { put16(&b, 18, UInt16(hdrLen - t + n)) } else { put16(&b, 16, UInt16(hdrLen - 14 + n)); put16(&b, 18, id &+ UInt16(k)) }
            put32(&b, t + 4, seq &+ UInt32(at))
            if at + n < data.count { b[t + 13] &= ~0x08 }
            fixChecksums(&b, v6: v6)
            out.append(b)
            at += n
            k += 1
        }
        return out
    }
}

/// A device that records what is written (tests only: it allocates).
final class RecordingDevice: PacketDevice {
    let name = "enc0"
    var fileDescriptor: Int32 { -1 }
    var written: [[UInt8]] = []
    func read(into buffer: PacketBuffer, headroom: Int, tailroom: Int) -> IOResult { .wouldBlock }
    func write(from buffer: PacketBuffer) -> IOResult {
        written.append(buffer.array)
        return .done(buffer.count)
    }
}

@Suite struct FrameInjectorTests {
    /// Writes `frames` through an injector (each in its own buffer, as a batch) and
    /// returns what reached the device.
    static func inject(_ frames: [[UInt8]], vnet: Bool = true) -> ([[UInt8]], CounterBlock<Counter>) {
        let device = RecordingDevice()
        let injector = FrameInjector(device: device, capacity: max(32, frames.count), vnetHeader: vnet)
        let stats = CounterBlock<Counter>()
        let buffers = frames.map { f -> PacketBuffer in let b = PacketBuffer(); b.load(f); return b }
        for b in buffers { _ = injector.write(from: b) }
        injector.flush(stats: stats)
        return (device.written, stats)
    }

    @Test(arguments: [false, true])
    func aRunBecomesOneFrameThatSegmentsBackIntoTheSame(_ v6: Bool) {
        let frames = Frames.run(v6: v6, count: 20, size: 1388, last: 500)
        let (written, stats) = Self.inject(frames)
        #expect(written.count == 1)
        let w = written[0]
        // virtio_net_hdr: NEEDS_CSUM, TCPV4 (1) or TCPV6 (4), header length, gso_size,
        // csum_start at the TCP header, csum_offset 16.
        let headers = 14 + (v6 ? 40 : 20) + 32
        #expect(Array(w.prefix(10)) == [1, v6 ? 4 : 1, UInt8(headers), 0, UInt8(1388 & 0xff), UInt8(1388 >> 8),
                                         UInt8(v6 ? 54 : 34), 0, 16, 0])
        #expect(w.count == 10 + headers + 19 * 1388 + 500)
        #expect(Frames.segment(w) == frames)
        #expect(stats[.encInjectCoalesced] == 20)
    }

    /// The partial checksum the stack completes: the pseudo header's sum.
    @Test func theMergedFramesChecksumCompletesToTheRightValue() {
        let frames = Frames.run(count: 3, size: 100)
        var w = Array(Self.inject(frames).0[0].dropFirst(10))
        let t = 34
        let partial = UInt16(w[t + 16]) << 8 | UInt16(w[t + 17])
        w[t + 16] = 0; w[t + 17] = 0
        let complete = ~Frames.fold(Frames.sum(w, t, w.count - t, UInt32(partial)))
        Frames.fixChecksums(&w, v6: false)
        #expect(complete == UInt16(w[t + 16]) << 8 | UInt16(w[t + 17]))
    }

    @Test func whatARunMayNotHoldIsWrittenAsItCame() {
        var frames = Frames.run(count: 3, size: 200)
        frames.append(Frames.tcp(seq: 1_000_000 + 600, id: 80, payload: 200, ack: 6000))    // another ack
        frames.append(Frames.tcp(sa: 8, seq: 1_000_000 + 800, id: 81, payload: 200))          // another SA
        frames.append(Frames.tcp(seq: 1_000_000 + 1200, id: 82, payload: 200))               // a gap
        frames.append(Frames.tcp(seq: 1_000_000 + 1400, id: 83, payload: 200, flags: 0x11))  // FIN
        frames.append([UInt8](repeating: 0, count: 60))                                       // not TCP at all
        let (written, stats) = Self.inject(frames)
        // The first three merge; each of the others goes alone behind a zero header.
        #expect(written.count == 6)
        #expect(Frames.segment(written[0]) == Array(frames.prefix(3)))
        for (w, f) in zip(written.dropFirst(), frames.dropFirst(3)) {
            #expect(Array(w.prefix(10)) == [UInt8](repeating: 0, count: 10))
            #expect(Array(w.dropFirst(10)) == f)
        }
        #expect(stats[.encInjectCoalesced] == 3)
    }

    @Test func aShortSegmentEndsTheRunAndPushOnlyLast() {
        let a = Frames.run(count: 2, size: 300, last: 100)                                  // 300, 100: one run
        let b = Frames.tcp(seq: 1_000_000 + 400, id: 79, payload: 300)                      // after the short one: new run
        let pushed = Frames.tcp(seq: 1_000_000 + 700, id: 80, payload: 300, flags: 0x18)   // PSH, then...
        let after = Frames.tcp(seq: 1_000_000 + 1000, id: 81, payload: 300)                // ...nothing may follow it
        let (written, _) = Self.inject(a + [b, pushed, after])
        #expect(written.count == 3)
        #expect(Frames.segment(written[0]) == a)
        #expect(Frames.segment(written[1]) == [b, pushed])
        #expect(Array(written[2].dropFirst(10)) == after)
    }

    /// Datagrams of one size and flow become one GSO_UDP_L4 frame; segmentation gives
    /// the same datagrams back. Another size ends the run (a shorter one may close it).
    @Test(arguments: [false, true])
    func udpDatagramsOfOneFlowMergeToo(_ v6: Bool) {
        var frames = (0..<10).map { Frames.udp(v6: v6, id: 300 &+ UInt16($0), payload: $0 == 9 ? 20 : 64) }
        frames.append(Frames.udp(v6: v6, id: 310, payload: 64))                    // after the short one
        frames.append(Frames.udp(v6: v6, id: 311, payload: 64, sport: 40001))      // another flow
        let (written, stats) = Self.inject(frames)
        #expect(written.count == 3)
        let l4 = v6 ? 54 : 34
        #expect(Array(written[0].prefix(10)) == [1, 5, UInt8(l4 + 8), 0, 64, 0, UInt8(l4), 0, 6, 0])
        #expect(Frames.segmentUDP(written[0]) == Array(frames.prefix(10)))
        #expect(Array(written[1].dropFirst(10)) == frames[10] && Array(written[2].dropFirst(10)) == frames[11])
        #expect(stats[.encInjectCoalesced] == 10)
    }

    @Test func withoutTheVnetHeaderEveryFrameGoesAlone() {
        let frames = Frames.run(count: 4, size: 100)
        let (written, stats) = Self.inject(frames, vnet: false)
        #expect(written == frames)
        #expect(stats[.encInjectCoalesced] == 0)
    }

    /// A run never makes an IP packet above 65535 bytes.
    @Test func runsStopBelowTheIPLimit() {
        let frames = Frames.run(count: 60, size: 1400)
        let (written, _) = Self.inject(frames)
        #expect(written.count == 2)
        #expect(written.allSatisfy { $0.count - 10 - 14 <= 65_535 })
        #expect(written.flatMap(Frames.segment) == frames)
    }
}
