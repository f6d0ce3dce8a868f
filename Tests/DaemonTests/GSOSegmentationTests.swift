// GSO frames read from enc0 cut up by encd as the kernel's segmentation would (issue
// #9): frames merged by the injector (the same virtio header the kernel gives a TAP
// with TSO/USO) come back out of GSOSegmentation exactly as they went in, checksums
// included, computed here by the tests' own code (Frames).

import EncCore
import IPsec
import Testing
@testable import Daemon

@Suite struct GSOSegmentationTests {
    /// Cuts the virtio header + frame `w` with GSOSegmentation; the IP packets it emits.
    static func cut(_ w: [UInt8]) -> [[UInt8]]? {
        guard let vnet = w.withUnsafeBytes({ VirtioNetHeaderFields.read($0) }) else { return nil }
        let packet = PacketBuffer()
        packet.load(Array(w.dropFirst(10 + 14)))
        let scratch = PacketBuffer()
        var out: [[UInt8]] = []
        let ok = GSOSegmentation.segment(packet.bytes, vnet: vnet, into: scratch) { s in
            out.append(s.array)
            return true
        }
        return ok ? out : nil
    }

    @Test(arguments: [false, true])
    func tcpSuperPacketsComeBackAsTheSegmentsThatMadeThem(_ v6: Bool) throws {
        let frames = Frames.run(v6: v6, count: 30, size: 1388, last: 77)
        let (written, _) = FrameInjectorTests.inject(frames)
        #expect(written.count == 1)
        let packets = try #require(Self.cut(written[0]))
        #expect(packets == frames.map { Array($0.dropFirst(14)) })
    }

    @Test(arguments: [false, true])
    func udpGSOPacketsComeBackAsTheirDatagrams(_ v6: Bool) throws {
        let frames = (0..<12).map { Frames.udp(v6: v6, id: 300 &+ UInt16($0), payload: $0 == 11 ? 40 : 1200) }
        let (written, _) = FrameInjectorTests.inject(frames)
        #expect(written.count == 1)
        let packets = try #require(Self.cut(written[0]))
        #expect(packets == frames.map { Array($0.dropFirst(14)) })
        #expect(packets == Frames.segmentUDP(written[0]).map { Array($0.dropFirst(14)) })
    }

    /// FIN and PSH only on the last segment, CWR only on the first: what tcp_gso_segment does.
    @Test func flagsFollowTheKernelsRules() throws {
        let payload = 3 * 1000 + 10
        var f = Frames.tcp(seq: 4_000_000_000, id: 0xfffe, payload: payload, flags: 0x10 | 0x08 | 0x01 | 0x80)
        f = Array(f.dropFirst(14))
        var w: [UInt8] = [1, 0x80 | 1, 66, 0, 0xe8, 0x03, 34, 0, 16, 0] + [UInt8](repeating: 0, count: 14)
        w += f
        let packets = try #require(Self.cut(w))
        #expect(packets.count == 4)
        #expect(packets.map { $0[20 + 13] } == [0x90, 0x10, 0x10, 0x19])
        // Sequence numbers wrap, IPv4 ids count up and wrap.
        #expect(packets.map { UInt32($0[24]) << 24 | UInt32($0[25]) << 16 | UInt32($0[26]) << 8 | UInt32($0[27]) }
                == [4_000_000_000, 4_000_001_000, 4_000_002_000, 4_000_003_000])
        #expect(packets.map { UInt16($0[4]) << 8 | UInt16($0[5]) } == [0xfffe, 0xffff, 0, 1])
        for p in packets {
            var frame = [UInt8](repeating: 0, count: 12) + [0x08, 0x00] + p
            let before = frame
            Frames.fixChecksums(&frame, v6: false)
            #expect(frame == before, "checksums as the test's own code computes them")
        }
    }

    @Test func aFrameThatLiesAboutItsContentsIsRefusedWhole() {
        let frames = Frames.run(count: 4, size: 1000)
        var w = FrameInjectorTests.inject(frames).0[0]
        // The virtio header says UDP; the packet is TCP.
        w[1] = 5
        #expect(Self.cut(w) == nil)
        // IPv4 total length beyond the frame.
        var v = FrameInjectorTests.inject(frames).0[0]
        v[10 + 14 + 2] = 0xff
        #expect(Self.cut(v) == nil)
        // gso_size 0.
        var z = FrameInjectorTests.inject(frames).0[0]
        z[4] = 0; z[5] = 0
        #expect(Self.cut(z) == nil)
        // Too short for any header.
        #expect(Self.cut([1, 1, 0, 0, 100, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 30)) == nil)
    }

    /// A packet whose checksum was left for the device (NEEDS_CSUM, not GSO): finished
    /// in place to what a full computation gives.
    @Test(arguments: [false, true])
    func partialChecksumsAreFinished(_ v6: Bool) {
        let frame = Frames.tcp(v6: v6, seq: 9, payload: 333, flags: 0x18)
        let t = v6 ? 40 : 20
        var partial = Array(frame.dropFirst(14))
        // The stack leaves the pseudo-header's sum, not complemented, in the field.
        let tcpLength = partial.count - t
        var pseudo = UInt32(tcpLength) + 6
        pseudo = v6 ? Frames.sum(partial, 8, 32, pseudo) : Frames.sum(partial, 12, 8, pseudo)
        Frames.put16(&partial, t + 16, Frames.fold(pseudo))
        let buffer = PacketBuffer()
        buffer.load(partial)
        #expect(GSOSegmentation.completeChecksum(buffer.bytes, start: t, offset: 16))
        #expect(buffer.array == Array(frame.dropFirst(14)))
        #expect(!GSOSegmentation.completeChecksum(buffer.bytes, start: buffer.count - 1, offset: 0))
        #expect(!GSOSegmentation.completeChecksum(buffer.bytes, start: -1, offset: 16))
    }
}
