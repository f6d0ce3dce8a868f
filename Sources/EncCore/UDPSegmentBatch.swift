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
        public var source: IPAddress
        public var destination: IPAddress
        public var sourcePort: UInt16
        public var destinationPort: UInt16
        /// IPv4 TOS or IPv6 traffic class.
        public var trafficClass: UInt8
        /// IPv4 TTL or IPv6 hop limit.
        public var hopLimit: UInt8

        public var isIPv6: Bool { source.family == .inet6 }

        static let none = Header(source: IPAddress(v4: 0), destination: IPAddress(v4: 0),
                                 sourcePort: 0, destinationPort: 0, trafficClass: 0, hopLimit: 0)
    }

    /// What the outer headers of a finished ESP-in-UDP packet say, and where its UDP
    /// payload starts; nil when it cannot be part of a run (see above).
    public static func header(of p: UnsafeMutableRawBufferPointer) -> (header: Header, payloadStart: Int)? {
        guard p.count >= 1 else { return nil }
        var h = Header.none
        let ipLength: Int
        if p[0] >> 4 == 4, let ip = IPv4Header(p) {
            guard ip.headerLength == IPv4Header.minimumLength, Int(ip.totalLength) == p.count,
                  ip.flagsAndFragmentOffset == 0x4000, ip.protocol == IPProtocol.udp else { return nil }     // DF alone
            ipLength = IPv4Header.minimumLength
            (h.source, h.destination, h.trafficClass, h.hopLimit) = (ip.source, ip.destination, ip.tos, ip.ttl)
        } else if p[0] >> 4 == 6, let ip = IPv6Header(p) {
            guard ip.flowLabel == 0, Int(ip.payloadLength) == p.count - IPv6Header.length,
                  ip.nextHeader == IPProtocol.udp else { return nil }
            ipLength = IPv6Header.length
            (h.source, h.destination, h.trafficClass, h.hopLimit) = (ip.source, ip.destination, ip.trafficClass, ip.hopLimit)
        } else {
            return nil
        }
        guard p.count > ipLength + 8, Int(p.be16(ipLength + 4)) == p.count - ipLength else { return nil }
        h.sourcePort = p.be16(ipLength)
        h.destinationPort = p.be16(ipLength + 2)
        return (h, ipLength + 8)
    }

    /// The kernel's limit on segments per send (UDP_MAX_SEGMENTS: 64 before Linux 6.9,
    /// 128 since; the smaller one).
    public static let kernelMaxSegments = 64
    /// The payload bytes of one send: a UDP length field holds 65,535 with its header,
    /// an IPv4 total length 65,535 with the IP header too.
    public static let maxBytes = 65_535 - 20 - 8

    public private(set) var header = Header.none
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
    public func append(_ packet: UnsafeMutableRawBufferPointer, header h: Header, payloadStart: Int) -> Append {
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
