// UDPSegmentBatch: UDP-encapsulated ESP packets (RFC 3948) gathered for one UDP GSO
// send (UDP_SEGMENT, issue #9). encd builds each ESP-in-UDP packet whole, outer header
// included; sent one by one through a raw socket, each crosses the host's output path
// (routing, netfilter's OUTPUT and POSTROUTING, the device) and the peer's input path
// on its own. One send of a run of datagrams with UDP_SEGMENT crosses them once: the
// kernel keeps the run as one GSO packet as far as it can and cuts it into the
// datagrams the run was made of where it must (the device, a socket that reads
// datagrams, a queue), each with its own UDP and IP header.
//
// A run is what the kernel's segmentation gives back unchanged: the same addresses,
// ports, TOS or traffic class and TTL or hop limit; IPv4 with DF set, without options
// or fragments; IPv6 without extension headers and with flow label 0 (what encd
// writes); payloads of one size, the last one shorter or the same. The kernel writes
// the headers itself (its own IPv4 identification and a UDP checksum, which RFC 3948
// §2.1 permits: receivers must not depend on the zero encd writes otherwise). Anything
// else is not batched: the caller sends it as it is, after the run before it, so the
// packets of an SA leave in the order encd numbered them.
//
// Preallocated storage, no allocation per packet; one owner (an ipsec-out worker).

public final class UDPSegmentBatch {
    /// The outer header fields one run shares.
    public struct Header: Equatable, Sendable {
        public var isIPv6: Bool
        /// IPv4 addresses in the first 4 bytes, the rest zero.
        public var source: (UInt64, UInt64)
        public var destination: (UInt64, UInt64)
        public var sourcePort: UInt16
        public var destinationPort: UInt16
        /// IPv4 TOS or IPv6 traffic class.
        public var trafficClass: UInt8
        /// IPv4 TTL or IPv6 hop limit.
        public var hopLimit: UInt8

        public static func == (a: Header, b: Header) -> Bool {
            a.isIPv6 == b.isIPv6 && a.source == b.source && a.destination == b.destination
                && a.sourcePort == b.sourcePort && a.destinationPort == b.destinationPort
                && a.trafficClass == b.trafficClass && a.hopLimit == b.hopLimit
        }

        /// The address bytes (4 or 16) as the kernel's sockaddr and pktinfo take them.
        public func withAddresses<R>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> R) -> R {
            var s = source, d = destination
            return withUnsafeBytes(of: &s) { sp in
                withUnsafeBytes(of: &d) { dp in body(sp, dp) }
            }
        }
    }

    /// What the outer headers of a finished ESP-in-UDP packet say, and where its UDP
    /// payload starts; nil when it cannot be part of a run (see above).
    public static func header(of p: UnsafeRawBufferPointer) -> (header: Header, payloadStart: Int)? {
        guard p.count >= 1 else { return nil }
        let version = p[0] >> 4
        let ipLength: Int
        var h = Header(isIPv6: version == 6, source: (0, 0), destination: (0, 0),
                       sourcePort: 0, destinationPort: 0, trafficClass: 0, hopLimit: 0)
        if version == 4 {
            guard p.count >= 28, p[0] == 0x45, p.be16(2) == p.count, p.be16(6) == 0x4000, p[9] == 17 else { return nil }
            ipLength = 20
            h.trafficClass = p[1]
            h.hopLimit = p[8]
            h.source = (UInt64(p.be32(12)) << 32, 0)
            h.destination = (UInt64(p.be32(16)) << 32, 0)
        } else if version == 6 {
            guard p.count >= 48, p.be32(0) & 0x000f_ffff == 0, Int(p.be16(4)) == p.count - 40, p[6] == 17 else { return nil }
            ipLength = 40
            h.trafficClass = UInt8(truncatingIfNeeded: p.be32(0) >> 20)
            h.hopLimit = p[7]
            h.source = (p.be64(8), p.be64(16))
            h.destination = (p.be64(24), p.be64(32))
        } else {
            return nil
        }
        guard Int(p.be16(ipLength + 4)) == p.count - ipLength, p.count > ipLength + 8 else { return nil }
        h.sourcePort = p.be16(ipLength)
        h.destinationPort = p.be16(ipLength + 2)
        // Stored as the kernel wants them: big-endian addresses in memory order.
        h.source = (h.source.0.bigEndian, h.source.1.bigEndian)
        h.destination = (h.destination.0.bigEndian, h.destination.1.bigEndian)
        return (h, ipLength + 8)
    }

    /// The kernel's limit on segments per send (UDP_MAX_SEGMENTS: 64 before Linux 6.9,
    /// 128 since; the smaller one).
    public static let kernelMaxSegments = 64
    /// The payload bytes of one send: a UDP length field holds 65,535 with its header,
    /// an IPv4 total length 65,535 with the IP header too.
    public static let maxBytes = 65_535 - 20 - 8

    public private(set) var header = Header(isIPv6: false, source: (0, 0), destination: (0, 0),
                                            sourcePort: 0, destinationPort: 0, trafficClass: 0, hopLimit: 0)
    /// Datagrams in the run.
    public private(set) var count = 0
    /// Every datagram's payload size but the last one's.
    public private(set) var segmentSize = 0
    /// Payload bytes in `storage`.
    public private(set) var length = 0
    /// A shorter datagram ended the run.
    private var closed = false
    /// At most this many datagrams per run (1: no batching).
    public var maxSegments: Int
    /// The payloads, back to back.
    public let storage: UnsafeMutableRawBufferPointer

    public init(maxSegments: Int = UDPSegmentBatch.kernelMaxSegments) {
        self.maxSegments = max(1, maxSegments)
        storage = .allocate(byteCount: Self.maxBytes, alignment: 16)
    }

    deinit { storage.deallocate() }

    public enum Append: Equatable, Sendable {
        /// Part of the run now.
        case added
        /// Does not continue this run: send the run, then append it again.
        case endsRun
    }

    /// Appends the UDP payload of `packet`, whose outer header `header(of:)` read.
    public func append(_ packet: UnsafeRawBufferPointer, header h: Header, payloadStart: Int) -> Append {
        let size = packet.count - payloadStart
        if count > 0 {
            guard !closed, count < maxSegments, h == header, size <= segmentSize,
                  length + size <= Self.maxBytes else { return .endsRun }
        } else {
            header = h
            segmentSize = size
        }
        (storage.baseAddress! + length).copyMemory(from: packet.baseAddress! + payloadStart, byteCount: size)
        length += size
        count += 1
        if size < segmentSize { closed = true }
        return .added
    }

    /// The payload of datagram `i` (for a send one by one).
    public func datagram(_ i: Int) -> UnsafeRawBufferPointer {
        let start = i * segmentSize
        return UnsafeRawBufferPointer(start: storage.baseAddress! + start, count: min(segmentSize, length - start))
    }

    /// Empties the run (after it was sent).
    public func reset() {
        count = 0
        length = 0
        segmentSize = 0
        closed = false
    }
}
