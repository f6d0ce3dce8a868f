// FrameCoalescing: runs of consecutive TCP segments of one flow merged into one GSO
// frame, the way the kernel's GRO merges them on a real interface (issue #9). encd
// writes decrypted packets into enc0 (a TAP device); written one by one, each crosses
// the kernel's receive, conntrack, nftables, routing and forwarding on its own. With
// IFF_VNET_HDR a write may carry a virtio_net_hdr describing a GSO frame: the stack
// then handles one packet for the whole run and segments it (or hands it whole to a
// device with TSO) only where it leaves.
//
// A TCP run follows tcp_gro_receive's rules, stricter where that costs nothing: the
// same Ethernet source (for enc0, the SA that carried the packets), addresses, ports,
// TTL or hop limit, TOS or traffic class and flow label, DF, acknowledgement number,
// window and TCP options; IPv4 identifications counting up by one; sequence numbers
// that continue exactly; ACK set and no SYN, FIN, RST, URG, ECE or CWR; every segment
// the first one's size except the last, which may be shorter; PSH only on the last.
// A UDP run (GSO_UDP_L4, what UDP GRO makes for forwarding) keeps the same rules but
// the TCP ones: the datagrams come out of segmentation exactly as they went in. IPv4
// without options and IPv6 without extension headers only. Anything else is written
// as it came.
//
// The merged frame keeps the first packet's headers with the lengths fixed, the IPv4
// header checksum recomputed, PSH if the last segment had it, and the TCP or UDP
// checksum field holding the pseudo-header sum over the merged length
// (VIRTIO_NET_HDR_F_NEEDS_CSUM: segmentation adjusts it per segment, and the stack or
// the device completes it).

public enum VirtioNetHeader {
    /// struct virtio_net_hdr (without num_buffers): what a TAP with IFF_VNET_HDR expects
    /// in front of every frame, little-endian on this machine's TAP.
    public static let size = 10
    static let needsChecksum: UInt8 = 1
    static let gsoTCPv4: UInt8 = 1
    static let gsoTCPv6: UInt8 = 4
    static let gsoUDPL4: UInt8 = 5

    /// The header of a frame that is neither GSO nor missing its checksum: all zero.
    public static func writePlain(at p: UnsafeMutableRawBufferPointer) {
        for i in 0..<size { p[i] = 0 }
    }
}

/// What coalescing needs of one Ethernet frame carrying IPv4 or IPv6 and TCP or UDP.
public struct MergeableSegment: Equatable, Sendable {
    public var isIPv6: Bool
    public var isUDP: Bool
    /// Offsets in the frame: the IP header at 14, the TCP or UDP header at `tcpStart`.
    public var tcpStart: Int
    /// The TCP header's length (8 for UDP).
    public var tcpHeaderLength: Int
    public var payloadLength: Int
    public var sequence: UInt32
    public var flags: UInt8
    public var ipID: UInt16

    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08
    static let ack: UInt8 = 0x10, urg: UInt8 = 0x20, ece: UInt8 = 0x40, cwr: UInt8 = 0x80

    public var headerLength: Int { tcpStart + tcpHeaderLength }
    public var hasPush: Bool { flags & Self.psh != 0 }

    /// The segment of `frame` when it may take part in a run; nil otherwise.
    public static func parse(_ f: UnsafeRawBufferPointer) -> MergeableSegment? {
        let l3 = 14
        guard f.count >= l3 + 40 else { return nil }
        let type = UInt16(f[12]) << 8 | UInt16(f[13])
        var tcpStart: Int, ipTotal: Int, id: UInt16 = 0, proto: UInt8
        switch type {
        case 0x0800:
            // Version 4, IHL 5, not a fragment (MF clear, offset 0).
            guard f[l3] == 0x45, f[l3 + 6] & 0x3f == 0, f[l3 + 7] == 0 else { return nil }
            proto = f[l3 + 9]
            ipTotal = Int(f[l3 + 2]) << 8 | Int(f[l3 + 3])
            id = UInt16(f[l3 + 4]) << 8 | UInt16(f[l3 + 5])
            tcpStart = l3 + 20
        case 0x86DD:
            guard f[l3] >> 4 == 6 else { return nil }
            proto = f[l3 + 6]
            ipTotal = 40 + (Int(f[l3 + 4]) << 8 | Int(f[l3 + 5]))
            tcpStart = l3 + 40
        default:
            return nil
        }
        guard l3 + ipTotal == f.count else { return nil }
        if proto == 17 {
            // UDP: its length is the IP payload's, and it carries data.
            guard f.count > tcpStart + 8, Int(f[tcpStart + 4]) << 8 | Int(f[tcpStart + 5]) == f.count - tcpStart else { return nil }
            return MergeableSegment(isIPv6: type == 0x86DD, isUDP: true, tcpStart: tcpStart, tcpHeaderLength: 8,
                                    payloadLength: f.count - tcpStart - 8, sequence: 0, flags: 0, ipID: id)
        }
        guard proto == 6, f.count >= tcpStart + 20 else { return nil }
        let thl = Int(f[tcpStart + 12] >> 4) * 4
        guard thl >= 20, tcpStart + thl < f.count else { return nil }   // some payload
        let flags = f[tcpStart + 13]
        guard flags & ack != 0, flags & (fin | syn | rst | urg | ece | cwr) == 0 else { return nil }
        let seq = UInt32(f[tcpStart + 4]) << 24 | UInt32(f[tcpStart + 5]) << 16 | UInt32(f[tcpStart + 6]) << 8 | UInt32(f[tcpStart + 7])
        return MergeableSegment(isIPv6: type == 0x86DD, isUDP: false, tcpStart: tcpStart, tcpHeaderLength: thl,
                          payloadLength: f.count - tcpStart - thl, sequence: seq, flags: flags, ipID: id)
    }

    /// Whether `next` (frame `nf`) may follow `self` (frame `f`, the run's last so far)
    /// in the run that `first` (frame `ff`) began.
    public func mayBeFollowed(by next: MergeableSegment, _ nf: UnsafeRawBufferPointer, in f: UnsafeRawBufferPointer,
                              first: MergeableSegment, _ ff: UnsafeRawBufferPointer) -> Bool {
        guard next.isIPv6 == isIPv6, next.isUDP == isUDP, next.tcpHeaderLength == first.tcpHeaderLength, !hasPush,
              payloadLength == first.payloadLength, next.payloadLength <= first.payloadLength,
              isUDP || next.sequence == sequence &+ UInt32(truncatingIfNeeded: payloadLength) else { return false }
        if !isIPv6 && next.ipID != ipID &+ 1 { return false }
        // Ethernet source (the SA), then the IP fields that must match: IPv4 TOS,
        // flags/DF, TTL, protocol, addresses; IPv6 version, class, flow label, next
        // header, hop limit, addresses.
        guard equal(ff, nf, 6, 6) else { return false }
        if isIPv6 {
            guard equal(ff, nf, 14, 4), equal(ff, nf, 14 + 6, 34) else { return false }
        } else {
            guard ff[15] == nf[15], ff[20] == nf[20], equal(ff, nf, 14 + 8, 2), equal(ff, nf, 14 + 12, 8) else { return false }
        }
        // Ports, then (TCP) acknowledgement, window and options; the flags the same but PSH.
        let t = first.tcpStart
        if isUDP { return equal(ff, nf, t, 4) }
        guard equal(ff, nf, t, 4), equal(ff, nf, t + 8, 4), equal(ff, nf, t + 14, 2),
              equal(ff, nf, t + 20, first.tcpHeaderLength - 20),
              (first.flags | Self.psh) == (next.flags | Self.psh) else { return false }
        return true
    }

    private func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> Bool {
        var i = at
        while i < at + n {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }
}

public enum FrameCoalescing {
    /// Largest IP packet a run may make (IPv4 total length; IPv6 payload length + 40
    /// would allow a little more, kept the same).
    public static let maxIPLength = 65_535

    /// Writes, into `out` (at its start), the virtio_net_hdr and the merged frame of
    /// `count` frames given by `frame(i)` with their segments `segment(i)`, all of one
    /// run. Returns the bytes written, or nil when `out` is too small.
    public static func merge(count: Int, frame: (Int) -> UnsafeRawBufferPointer, segment: (Int) -> MergeableSegment,
                             into out: UnsafeMutableRawBufferPointer) -> Int? {
        let first = segment(0), ff = frame(0)
        let header = first.headerLength
        var payload = 0
        for i in 0..<count { payload += segment(i).payloadLength }
        let total = VirtioNetHeader.size + header + payload
        guard count >= 1, total <= out.count, header + payload - 14 <= maxIPLength else { return nil }
        let base = VirtioNetHeader.size
        guard let o = out.baseAddress, let fb = ff.baseAddress else { return nil }
        (o + base).copyMemory(from: fb, byteCount: header)
        var at = base + header
        for i in 0..<count {
            let s = segment(i), f = frame(i)
            guard s.headerLength + s.payloadLength <= f.count, let src = f.baseAddress else { return nil }
            (o + at).copyMemory(from: src + s.headerLength, byteCount: s.payloadLength)
            at += s.payloadLength
        }
        let l3 = base + 14, t = base + first.tcpStart
        let tcpLength = first.tcpHeaderLength + payload
        if first.isUDP { out.setBE16(t + 4, UInt16(tcpLength)) }
        if first.isIPv6 {
            out.setBE16(l3 + 4, UInt16(tcpLength))
        } else {
            out.setBE16(l3 + 2, UInt16(20 + tcpLength))
            out.setBE16(l3 + 10, 0)
            out.setBE16(l3 + 10, Checksum.compute(UnsafeRawBufferPointer(rebasing: out[l3 ..< l3 + 20])))
        }
        if !first.isUDP && segment(count - 1).hasPush { out[t + 13] |= MergeableSegment.psh }
        // The pseudo-header's sum, not complemented: the partial checksum the stack
        // finishes over the TCP or UDP header and payload (CHECKSUM_PARTIAL).
        let checksumAt: Int = first.isUDP ? 6 : 16
        let addresses = first.isIPv6 ? l3 + 8 ..< l3 + 40 : l3 + 12 ..< l3 + 20
        let pseudo = Checksum.sum(UnsafeRawBufferPointer(rebasing: out[addresses]),
                                  initial: UInt32(tcpLength) + (first.isUDP ? 17 : 6))
        out.setBE16(t + checksumAt, ~Checksum.finish(pseudo))
        // virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
        out[0] = VirtioNetHeader.needsChecksum
        out[1] = count < 2 ? 0 : first.isUDP ? VirtioNetHeader.gsoUDPL4 : (first.isIPv6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4)
        putLE16(out, 2, UInt16(header))
        putLE16(out, 4, count > 1 ? UInt16(first.payloadLength) : 0)
        putLE16(out, 6, UInt16(first.tcpStart))
        putLE16(out, 8, UInt16(checksumAt))
        return total
    }

    static func putLE16(_ p: UnsafeMutableRawBufferPointer, _ at: Int, _ v: UInt16) {
        p[at] = UInt8(v & 0xff)
        p[at + 1] = UInt8(v >> 8)
    }
}
