// Views of transport headers in packet memory: UDP (RFC 768), TCP (RFC 9293),
// ICMP (RFC 792) / ICMPv6 (RFC 4443). No copy, no allocation. Field setters write the
// field only; `replaceAddress` / `updateChecksum(old:new:)` keep the checksum right
// after a NAT-style edit of the pseudo-header or a field (RFC 1624).

public struct UDPHeader {
    public let bytes: UnsafeMutableRawBufferPointer
    public let offset: Int
    public static let length = 8

    @inlinable
    public init?(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        guard offset >= 0, bytes.count - offset >= UDPHeader.length else { return nil }
        self.bytes = bytes
        self.offset = offset
    }

    @inlinable
    public init(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        self.bytes = bytes
        self.offset = offset
    }

    public var sourcePort: UInt16 {
        get { bytes.be16(offset) }
        nonmutating set { bytes.setBE16(offset, newValue) }
    }
    public var destinationPort: UInt16 {
        get { bytes.be16(offset + 2) }
        nonmutating set { bytes.setBE16(offset + 2, newValue) }
    }
    /// Header plus data, in bytes.
    public var length: UInt16 {
        get { bytes.be16(offset + 4) }
        nonmutating set { bytes.setBE16(offset + 4, newValue) }
    }
    /// 0 over IPv4 means "no checksum" (RFC 768); a computed 0 is sent as 0xffff.
    public var checksum: UInt16 {
        get { bytes.be16(offset + 6) }
        nonmutating set { bytes.setBE16(offset + 6, newValue) }
    }

    /// Fixes the checksum after a covered 16-bit word changed (a port, say); a zero
    /// (absent) checksum stays zero.
    public func updateChecksum(old: UInt16, new: UInt16) {
        let c = checksum
        guard c != 0 else { return }
        checksum = UDPHeader.nonZero(Checksum.update(c, old: old, new: new))
    }

    /// Fixes the checksum after a pseudo-header address changed (NAT, NAT-T transport
    /// mode fix-up, RFC 3948 3.1.2); a zero (absent) checksum stays zero.
    public func replaceAddress(old: IPAddress, new: IPAddress) {
        let c = checksum
        guard c != 0 else { return }
        checksum = UDPHeader.nonZero(Checksum.update(c, oldAddress: old, newAddress: new))
    }

    /// Sets a port and fixes the checksum.
    public func setSourcePort(_ p: UInt16) { let o = sourcePort; sourcePort = p; updateChecksum(old: o, new: p) }
    public func setDestinationPort(_ p: UInt16) { let o = destinationPort; destinationPort = p; updateChecksum(old: o, new: p) }

    @inline(__always) static func nonZero(_ c: UInt16) -> UInt16 { c == 0 ? 0xffff : c }
}

public struct TCPHeader {
    public let bytes: UnsafeMutableRawBufferPointer
    public let offset: Int
    public static let minimumLength = 20

    @inlinable
    public init?(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        guard offset >= 0, bytes.count - offset >= TCPHeader.minimumLength else { return nil }
        self.bytes = bytes
        self.offset = offset
    }

    @inlinable
    public init(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        self.bytes = bytes
        self.offset = offset
    }

    public var sourcePort: UInt16 {
        get { bytes.be16(offset) }
        nonmutating set { bytes.setBE16(offset, newValue) }
    }
    public var destinationPort: UInt16 {
        get { bytes.be16(offset + 2) }
        nonmutating set { bytes.setBE16(offset + 2, newValue) }
    }
    public var sequenceNumber: UInt32 {
        get { bytes.be32(offset + 4) }
        nonmutating set { bytes.setBE32(offset + 4, newValue) }
    }
    public var acknowledgmentNumber: UInt32 {
        get { bytes.be32(offset + 8) }
        nonmutating set { bytes.setBE32(offset + 8, newValue) }
    }
    /// Data offset in 32-bit words.
    public var dataOffset: Int { Int(bytes[offset + 12] >> 4) }
    public var headerLength: Int { dataOffset * 4 }
    public var flags: TCPFlags {
        get { TCPFlags(rawValue: bytes[offset + 13]) }
        nonmutating set { bytes[offset + 13] = newValue.rawValue }
    }
    public var window: UInt16 {
        get { bytes.be16(offset + 14) }
        nonmutating set { bytes.setBE16(offset + 14, newValue) }
    }
    public var checksum: UInt16 {
        get { bytes.be16(offset + 16) }
        nonmutating set { bytes.setBE16(offset + 16, newValue) }
    }
    public var urgentPointer: UInt16 {
        get { bytes.be16(offset + 18) }
        nonmutating set { bytes.setBE16(offset + 18, newValue) }
    }

    public func updateChecksum(old: UInt16, new: UInt16) {
        checksum = Checksum.update(checksum, old: old, new: new)
    }
    public func replaceAddress(old: IPAddress, new: IPAddress) {
        checksum = Checksum.update(checksum, oldAddress: old, newAddress: new)
    }
    public func setSourcePort(_ p: UInt16) { let o = sourcePort; sourcePort = p; updateChecksum(old: o, new: p) }
    public func setDestinationPort(_ p: UInt16) { let o = destinationPort; destinationPort = p; updateChecksum(old: o, new: p) }
}

public struct TCPFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

/// ICMP and ICMPv6 share this layout: type, code, checksum, then 4 message bytes
/// (identifier and sequence for echo). ICMPv6's checksum covers a pseudo-header,
/// ICMPv4's does not.
public struct ICMPHeader {
    public let bytes: UnsafeMutableRawBufferPointer
    public let offset: Int
    public static let length = 8

    @inlinable
    public init?(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        guard offset >= 0, bytes.count - offset >= ICMPHeader.length else { return nil }
        self.bytes = bytes
        self.offset = offset
    }

    @inlinable
    public init(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        self.bytes = bytes
        self.offset = offset
    }

    public var type: UInt8 {
        get { bytes[offset] }
        nonmutating set { bytes[offset] = newValue }
    }
    public var code: UInt8 {
        get { bytes[offset + 1] }
        nonmutating set { bytes[offset + 1] = newValue }
    }
    public var checksum: UInt16 {
        get { bytes.be16(offset + 2) }
        nonmutating set { bytes.setBE16(offset + 2, newValue) }
    }
    public var identifier: UInt16 {
        get { bytes.be16(offset + 4) }
        nonmutating set { bytes.setBE16(offset + 4, newValue) }
    }
    public var sequenceNumber: UInt16 {
        get { bytes.be16(offset + 6) }
        nonmutating set { bytes.setBE16(offset + 6, newValue) }
    }

    public func updateChecksum(old: UInt16, new: UInt16) {
        checksum = Checksum.update(checksum, old: old, new: new)
    }
    /// ICMPv6 only: the pseudo-header address changed.
    public func replaceAddress(old: IPAddress, new: IPAddress) {
        checksum = Checksum.update(checksum, oldAddress: old, newAddress: new)
    }
}

public typealias ICMPv6Header = ICMPHeader

/// Message types encd builds or inspects.
public enum ICMPType {
    public static let echoReply: UInt8 = 0
    public static let destinationUnreachable: UInt8 = 3
    public static let echoRequest: UInt8 = 8
    public static let timeExceeded: UInt8 = 11
    /// Code of destinationUnreachable: "fragmentation needed and DF set".
    public static let fragmentationNeeded: UInt8 = 4
}

public enum ICMPv6Type {
    public static let destinationUnreachable: UInt8 = 1
    public static let packetTooBig: UInt8 = 2
    public static let timeExceeded: UInt8 = 3
    public static let echoRequest: UInt8 = 128
    public static let echoReply: UInt8 = 129
}
