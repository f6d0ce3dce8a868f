// GSOSegmentation: what a device with TSO/USO does to a GSO frame, done by encd for
// the frames it reads from enc0 (issue #9). enc0 is a TAP with IFF_VNET_HDR and
// TUNSETOFFLOAD, so routing hands encd whole TCP super-packets (up to 64 KB) and UDP
// GSO packets, each described by its virtio_net_hdr (gso_type, gso_size), and packets
// whose TCP or UDP checksum is left for the device (VIRTIO_NET_HDR_F_NEEDS_CSUM:
// csum_start, csum_offset). encd must put on the wire exactly what the kernel's own
// segmentation would have sent: one packet per gso_size bytes of payload, each with
// its own lengths, IPv4 identification (counting up), TCP sequence number, flags (FIN
// and PSH only on the last segment, CWR only on the first) and full checksums.
//
// Stages, for one frame: `VirtioNetHeaderFields.read` -> either `segment` (GSO: each
// segment built in a scratch buffer and handed on, in order) or `completeChecksum`
// (in place). Nothing allocates; nothing traps on any input: a frame whose headers do
// not describe what its virtio header claims is refused whole.

/// The fields of a struct virtio_net_hdr (little-endian on this machine's TAP).
public struct VirtioNetHeaderFields: Equatable, Sendable {
    public var flags: UInt8
    public var gsoType: UInt8
    public var headerLength: Int
    public var gsoSize: Int
    /// Offsets from the start of the frame (its Ethernet header included).
    public var checksumStart: Int
    public var checksumOffset: Int

    public init(flags: UInt8 = 0, gsoType: UInt8 = 0, headerLength: Int = 0, gsoSize: Int = 0,
                checksumStart: Int = 0, checksumOffset: Int = 0) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// VIRTIO_NET_HDR_GSO_ECN: the sender set CWR; it stays on the first segment only.
    static let ecnFlag: UInt8 = 0x80

    public var needsChecksum: Bool { flags & VirtioNetHeader.needsChecksum != 0 }
    /// The GSO type without the ECN flag (0: not a GSO frame).
    public var kind: UInt8 { gsoType & ~Self.ecnFlag }

    /// The header at the start of `p`; nil when `p` is shorter than one.
    public static func read(_ p: UnsafeRawBufferPointer) -> VirtioNetHeaderFields? {
        guard p.count >= VirtioNetHeader.size else { return nil }
        func le16(_ at: Int) -> Int { Int(p[at]) | Int(p[at + 1]) << 8 }
        return VirtioNetHeaderFields(flags: p[0], gsoType: p[1], headerLength: le16(2), gsoSize: le16(4),
                                     checksumStart: le16(6), checksumOffset: le16(8))
    }
}

public enum GSOSegmentation {
    /// The headers of a TCP or UDP packet as segmentation needs them.
    struct Layout {
        var isIPv6: Bool
        var isUDP: Bool
        /// Start of the TCP or UDP header (the IP header's length).
        var l4: Int
        /// TCP or UDP header length.
        var l4Header: Int
        var payload: Int
        var headerLength: Int { l4 + l4Header }
    }

    /// The layout of `p` (an IP packet filling the buffer exactly) for a GSO type; nil
    /// when the packet is not what the type says (IPv6 extension headers included:
    /// the kernel does not build GSO frames with them for enc0).
    static func layout(_ p: UnsafeMutableRawBufferPointer, kind: UInt8) -> Layout? {
        guard p.count >= 20 else { return nil }
        let version = p[0] >> 4
        let l4: Int, proto: UInt8
        if version == 4 {
            l4 = Int(p[0] & 0x0f) * 4
            guard l4 >= 20, p.count >= l4, Int(p.be16(2)) == p.count, p[6] & 0x3f == 0, p[7] == 0 else { return nil }
            proto = p[9]
        } else if version == 6 {
            l4 = 40
            guard p.count >= 40, 40 + Int(p.be16(4)) == p.count else { return nil }
            proto = p[6]
        } else {
            return nil
        }
        let wantUDP = kind == VirtioNetHeader.gsoUDPL4
        let wantTCP = kind == VirtioNetHeader.gsoTCPv4 || kind == VirtioNetHeader.gsoTCPv6
        guard (wantUDP && proto == 17) || (wantTCP && proto == 6),
              kind != VirtioNetHeader.gsoTCPv4 || version == 4, kind != VirtioNetHeader.gsoTCPv6 || version == 6 else { return nil }
        let l4Header: Int
        if wantUDP {
            l4Header = 8
        } else {
            guard p.count >= l4 + 20 else { return nil }
            l4Header = Int(p[l4 + 12] >> 4) * 4
            guard l4Header >= 20 else { return nil }
        }
        guard p.count >= l4 + l4Header else { return nil }
        return Layout(isIPv6: version == 6, isUDP: wantUDP, l4: l4, l4Header: l4Header, payload: p.count - l4 - l4Header)
    }

    /// Cuts the GSO packet `p` (the IP packet of a frame whose virtio header is
    /// `vnet`) into packets of at most `vnet.gsoSize` bytes of payload. Each one, in
    /// order, is built in `scratch` (leaving `headroom` in front) with complete
    /// checksums and handed to `body`, which returns false to stop. Returns false,
    /// emitting nothing, when the packet does not match its header or `scratch` is too
    /// small; true otherwise (also when `body` stopped).
    @discardableResult
    public static func segment(_ p: UnsafeMutableRawBufferPointer, vnet: VirtioNetHeaderFields, into scratch: PacketBuffer,
                               headroom: Int = PacketBuffer.defaultHeadroom, _ body: (PacketBuffer) -> Bool) -> Bool {
        let mss = vnet.gsoSize
        guard mss > 0, let l = layout(p, kind: vnet.kind), headroom >= 0,
              headroom + l.headerLength + min(mss, l.payload) <= scratch.capacity,
              let src = UnsafeRawPointer(p.baseAddress) else { return false }
        let segments = l.payload == 0 ? 1 : (l.payload + mss - 1) / mss
        let id0 = l.isIPv6 ? 0 : p.be16(4)
        let seq0 = l.isUDP ? 0 : p.be32(l.l4 + 4)
        let flags0 = l.isUDP ? 0 : p[l.l4 + 13]
        for i in 0..<segments {
            let offset = i * mss
            let chunk = min(mss, l.payload - offset)
            scratch.reset(headroom: headroom)
            guard scratch.append(l.headerLength + chunk) else { return false }
            let s = scratch.bytes
            let dst = s.baseAddress!
            dst.copyMemory(from: src, byteCount: l.headerLength)
            (dst + l.headerLength).copyMemory(from: src + l.headerLength + offset, byteCount: chunk)
            let l4Length = l.l4Header + chunk
            if l.isIPv6 {
                s.setBE16(4, UInt16(l4Length))
            } else {
                s.setBE16(2, UInt16(l.l4 + l4Length))
                s.setBE16(4, id0 &+ UInt16(truncatingIfNeeded: i))
                s.setBE16(10, 0)
                s.setBE16(10, Checksum.compute(UnsafeRawBufferPointer(rebasing: s[0 ..< l.l4])))
            }
            let checksumAt: Int
            if l.isUDP {
                s.setBE16(l.l4 + 4, UInt16(l4Length))
                checksumAt = l.l4 + 6
            } else {
                s.setBE32(l.l4 + 4, seq0 &+ UInt32(truncatingIfNeeded: offset))
                var f = flags0
                if i + 1 < segments { f &= ~(MergeableSegment.fin | MergeableSegment.psh) }
                if i > 0 { f &= ~MergeableSegment.cwr }
                s[l.l4 + 13] = f
                checksumAt = l.l4 + 16
            }
            s.setBE16(checksumAt, 0)
            let addresses = l.isIPv6 ? 8 ..< 40 : 12 ..< 20
            let pseudo = Checksum.sum(UnsafeRawBufferPointer(rebasing: s[addresses]),
                                      initial: UInt32(l4Length) + (l.isUDP ? 17 : 6))
            let sum = Checksum.sum(UnsafeRawBufferPointer(rebasing: s[l.l4 ..< s.count]), initial: pseudo)
            let value = Checksum.finish(sum)
            s.setBE16(checksumAt, l.isUDP && value == 0 ? 0xffff : value)
            if !body(scratch) { return true }
        }
        return true
    }

    /// Finishes the checksum a device would (CHECKSUM_PARTIAL): the field at
    /// `start + offset` holds the pseudo-header's sum; the one's complement sum from
    /// `start` to the end goes there, complemented (0 written as 0xffff, as the kernel
    /// does). `start` is relative to `p`. False, leaving `p` as it was, when the field
    /// is not inside the packet.
    @discardableResult
    public static func completeChecksum(_ p: UnsafeMutableRawBufferPointer, start: Int, offset: Int) -> Bool {
        guard start >= 0, offset >= 0, start <= p.count, offset <= p.count - start, 2 <= p.count - start - offset else { return false }
        let value = Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(rebasing: p[start ..< p.count])))
        p.setBE16(start + offset, value == 0 ? 0xffff : value)
        return true
    }
}
