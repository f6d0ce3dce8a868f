// IPv6Header: a view of the fixed IPv6 header (RFC 8200 3) in packet memory; no copy,
// no allocation. IPv6 has no header checksum; an address edit must instead fix the
// upper-layer checksum (see TCPHeader/UDPHeader/ICMPHeader.replaceAddress).
// The extension-header walk lives in IPv6Extensions.swift.

public struct IPv6Header {
    public let bytes: UnsafeMutableRawBufferPointer
    public let offset: Int

    public static let length = 40

    /// A view at `offset`, or nil when the 40 fixed bytes do not fit.
    @inlinable
    public init?(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int = 0) {
        guard offset >= 0, bytes.count - offset >= IPv6Header.length else { return nil }
        self.bytes = bytes
        self.offset = offset
    }

    @inlinable
    public init(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// Version (4 bits), traffic class (8), flow label (20).
    public var firstWord: UInt32 {
        get { bytes.be32(offset) }
        nonmutating set { bytes.setBE32(offset, newValue) }
    }

    public var version: UInt8 { bytes[offset] >> 4 }

    /// Traffic class: DSCP (6 bits) then ECN (2 bits).
    public var trafficClass: UInt8 {
        get { UInt8(truncatingIfNeeded: firstWord >> 20) }
        nonmutating set { firstWord = (firstWord & 0xf00f_ffff) | (UInt32(newValue) << 20) }
    }
    public var dscp: UInt8 {
        get { trafficClass >> 2 }
        nonmutating set { trafficClass = (newValue << 2) | (trafficClass & 0x03) }
    }
    public var ecn: ECN {
        get { ECN(bits: trafficClass) }
        nonmutating set { trafficClass = (trafficClass & 0xfc) | newValue.rawValue }
    }
    public var flowLabel: UInt32 {
        get { firstWord & 0x000f_ffff }
        nonmutating set { firstWord = (firstWord & 0xfff0_0000) | (newValue & 0x000f_ffff) }
    }

    /// Bytes after the fixed header (extension headers included).
    public var payloadLength: UInt16 {
        get { bytes.be16(offset + 4) }
        nonmutating set { bytes.setBE16(offset + 4, newValue) }
    }
    public var nextHeader: UInt8 {
        get { bytes[offset + 6] }
        nonmutating set { bytes[offset + 6] = newValue }
    }
    public var hopLimit: UInt8 {
        get { bytes[offset + 7] }
        nonmutating set { bytes[offset + 7] = newValue }
    }

    public var source: IPAddress {
        get { IPAddress(family: .inet6, hi: bytes.be64(offset + 8), lo: bytes.be64(offset + 16)) }
        nonmutating set { writeAddress(8, newValue) }
    }
    public var destination: IPAddress {
        get { IPAddress(family: .inet6, hi: bytes.be64(offset + 24), lo: bytes.be64(offset + 32)) }
        nonmutating set { writeAddress(24, newValue) }
    }

    /// Decrements the hop limit; false, changing nothing, when it is 0 or 1.
    @discardableResult
    public func decrementHopLimit() -> Bool {
        let h = hopLimit
        guard h > 1 else { return false }
        hopLimit = h - 1
        return true
    }

    @inline(__always)
    func writeAddress(_ rel: Int, _ a: IPAddress) {
        bytes.setBE64(offset + rel, a.hi)
        bytes.setBE64(offset + rel + 8, a.lo)
    }
}
