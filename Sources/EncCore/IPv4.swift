// IPv4Header: a view of an IPv4 header (RFC 791) in packet memory; no copy, no
// allocation. Setters keep the header checksum right with RFC 1624 updates, so a
// TTL, TOS/ECN or address edit costs a few additions, not a recomputation.
//
// The view checks at construction that the fixed 20 bytes are inside the buffer;
// accessors read only those. Options (IHL > 5) are the caller's business: use
// `headerLength` after PacketInfo.parse has checked it.

public struct IPv4Header {
    public let bytes: UnsafeMutableRawBufferPointer
    /// Offset of the header's first byte in `bytes`.
    public let offset: Int

    public static let minimumLength = 20

    /// A view at `offset`, or nil when the 20 fixed bytes do not fit.
    @inlinable
    public init?(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int = 0) {
        guard offset >= 0, bytes.count - offset >= IPv4Header.minimumLength else { return nil }
        self.bytes = bytes
        self.offset = offset
    }

    /// A view the caller has already bounds-checked (after PacketInfo.parse).
    @inlinable
    public init(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    // MARK: fields (RFC 791 3.1)

    public var version: UInt8 { bytes[offset] >> 4 }
    /// Header length in 32-bit words.
    public var ihl: Int { Int(bytes[offset] & 0x0f) }
    /// Header length in bytes, options included.
    public var headerLength: Int { ihl * 4 }

    /// Type of service / DS field: DSCP (6 bits) then ECN (2 bits).
    public var tos: UInt8 {
        get { bytes[offset + 1] }
        nonmutating set { setWord(0, (UInt16(bytes[offset]) << 8) | UInt16(newValue)) }
    }
    public var dscp: UInt8 {
        get { tos >> 2 }
        nonmutating set { tos = (newValue << 2) | (tos & 0x03) }
    }
    public var ecn: ECN {
        get { ECN(bits: tos) }
        nonmutating set { tos = (tos & 0xfc) | newValue.rawValue }
    }

    public var totalLength: UInt16 {
        get { bytes.be16(offset + 2) }
        nonmutating set { setWord(2, newValue) }
    }
    public var identification: UInt16 {
        get { bytes.be16(offset + 4) }
        nonmutating set { setWord(4, newValue) }
    }
    /// Flags (3 bits: reserved, DF, MF) and fragment offset (13 bits, 8-byte units).
    public var flagsAndFragmentOffset: UInt16 {
        get { bytes.be16(offset + 6) }
        nonmutating set { setWord(6, newValue) }
    }
    public var dontFragment: Bool {
        get { flagsAndFragmentOffset & 0x4000 != 0 }
        nonmutating set {
            let w = flagsAndFragmentOffset
            flagsAndFragmentOffset = newValue ? (w | 0x4000) : (w & ~0x4000)
        }
    }
    public var moreFragments: Bool { flagsAndFragmentOffset & 0x2000 != 0 }
    /// Fragment offset in bytes.
    public var fragmentOffset: Int { Int(flagsAndFragmentOffset & 0x1fff) * 8 }
    /// True for any fragment, first or later.
    public var isFragment: Bool { flagsAndFragmentOffset & 0x3fff != 0 }

    public var ttl: UInt8 {
        get { bytes[offset + 8] }
        nonmutating set { setWord(8, (UInt16(newValue) << 8) | UInt16(bytes[offset + 9])) }
    }
    public var `protocol`: UInt8 {
        get { bytes[offset + 9] }
        nonmutating set { setWord(8, (UInt16(bytes[offset + 8]) << 8) | UInt16(newValue)) }
    }
    /// The stored header checksum; setting it writes the field only.
    public var checksum: UInt16 {
        get { bytes.be16(offset + 10) }
        nonmutating set { bytes.setBE16(offset + 10, newValue) }
    }

    public var source: IPAddress {
        get { IPAddress(v4: bytes.be32(offset + 12)) }
        nonmutating set { setAddress(12, newValue) }
    }
    public var destination: IPAddress {
        get { IPAddress(v4: bytes.be32(offset + 16)) }
        nonmutating set { setAddress(16, newValue) }
    }

    // MARK: checksum

    /// True when the header (headerLength bytes) is inside the buffer and sums to zero.
    public var isChecksumValid: Bool {
        let len = headerLength
        guard len >= IPv4Header.minimumLength, len <= bytes.count - offset else { return false }
        let sum = Checksum.sum(UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + len]))
        return sum == 0xffff
    }

    /// Recomputes the header checksum from scratch over headerLength bytes (clamped to
    /// the buffer and to at least 20). Builders use it; setters need not.
    public func updateChecksum() {
        let len = min(max(headerLength, IPv4Header.minimumLength), bytes.count - offset)
        checksum = 0
        checksum = Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + len])))
    }

    /// Decrements TTL (keeping the checksum right); false, changing nothing, when TTL
    /// is already 0 or 1 and the packet must not be forwarded.
    @discardableResult
    public func decrementTTL() -> Bool {
        let t = ttl
        guard t > 1 else { return false }
        ttl = t - 1
        return true
    }

    // MARK: private

    @inline(__always)
    func setWord(_ rel: Int, _ value: UInt16) {
        let old = bytes.be16(offset + rel)
        bytes.setBE16(offset + rel, value)
        checksum = Checksum.update(checksum, old: old, new: value)
    }

    @inline(__always)
    func setAddress(_ rel: Int, _ value: IPAddress) {
        let old = bytes.be32(offset + rel)
        let new = value.v4
        bytes.setBE32(offset + rel, new)
        checksum = Checksum.update(checksum, old32: old, new32: new)
    }
}
