// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// Stages a caller strings together:
//   1. `sum` over raw bytes (64 bits at a time) -> a partial sum
//   2. `pseudoHeader` for TCP/UDP/ICMPv6 -> another partial sum
//   3. `combine` the partials (pieces at odd offsets are byte-swapped)
//   4. `finish` -> the 16-bit value stored in the header
// or, when one field changes, `update` the stored checksum without touching the rest.
//
// A partial sum is a UInt32 holding a folded one's complement sum (0...0xffff) in
// network order, i.e. the value you would get by reading 16-bit words big-endian.
// Nothing here allocates; nothing traps on any input.

public enum Checksum {
    /// One's complement sum of `bytes`, added to `initial` (a partial sum). The bytes
    /// are taken to start at an even offset of the checksummed data; a trailing odd
    /// byte is padded with zero, as RFC 1071 says.
    @inlinable
    public static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return fold(UInt64(initial)) }
        var p = base
        var n = bytes.count
        // The sum is byte-order independent (RFC 1071 2.B): add native-order words and
        // swap the folded result once at the end. 32-bit halves go into 64-bit
        // accumulators, so no carry is lost before 2^32 words (64 GiB, far beyond any packet).
        var a0: UInt64 = 0, a1: UInt64 = 0, a2: UInt64 = 0, a3: UInt64 = 0
        while n >= 16 {
            let w0 = p.loadUnaligned(as: UInt64.self)
            let w1 = p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            a0 &+= w0 & 0xffff_ffff
            a1 &+= w0 >> 32
            a2 &+= w1 & 0xffff_ffff
            a3 &+= w1 >> 32
            p += 16
            n -= 16
        }
        var acc = addc(addc(a0, a1), addc(a2, a3))
        while n >= 8 {
            acc = addc(acc, p.loadUnaligned(as: UInt64.self))
            p += 8
            n -= 8
        }
        if n >= 4 {
            acc = addc(acc, UInt64(p.loadUnaligned(as: UInt32.self)))
            p += 4
            n -= 4
        }
        if n >= 2 {
            acc = addc(acc, UInt64(p.loadUnaligned(as: UInt16.self)))
            p += 2
            n -= 2
        }
        if n == 1 {
            // The odd byte is the high half of a big-endian word; in native order that
            // is whatever a load of [byte, 0] gives.
            acc = addc(acc, UInt64(UInt16(bigEndian: UInt16(p.load(as: UInt8.self)) << 8)))
        }
        let native = UInt16(truncatingIfNeeded: fold(acc))
        return fold(UInt64(UInt16(bigEndian: native)) + UInt64(initial))
    }

    @inlinable
    public static func sum(_ bytes: UnsafeMutableRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        sum(UnsafeRawBufferPointer(bytes), initial: initial)
    }

    /// Sums `count` bytes at `offset` of `bytes`, or nil when they are not all inside.
    @inlinable
    public static func sum(_ bytes: UnsafeRawBufferPointer, offset: Int, count: Int,
                           initial: UInt32 = 0) -> UInt32? {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else { return nil }
        return sum(UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + count]), initial: initial)
    }

    /// Combines two partial sums. `b` covers data that begins at an odd offset of the
    /// whole when `bAtOddOffset` is true (RFC 1071 2.B: then its bytes are swapped).
    @inlinable
    public static func combine(_ a: UInt32, _ b: UInt32, bAtOddOffset: Bool = false) -> UInt32 {
        let bb = bAtOddOffset ? UInt32(UInt16(truncatingIfNeeded: b).byteSwapped) : b
        return fold(UInt64(a) + UInt64(bb))
    }

    /// The checksum field value: the complement of the folded partial sum.
    @inlinable
    public static func finish(_ partial: UInt32) -> UInt16 {
        ~UInt16(truncatingIfNeeded: fold(UInt64(partial)))
    }

    /// RFC 1071 checksum of `bytes` (for an IPv4 header or ICMPv4 message whose
    /// checksum field is zero). Verifying: `compute` over data that includes a correct
    /// checksum gives 0.
    @inlinable
    public static func compute(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        finish(sum(bytes))
    }

    // MARK: pseudo-headers

    /// Partial sum of the TCP/UDP/ICMPv6 pseudo-header: the IPv4 one (RFC 793/768:
    /// src, dst, zero, protocol, length) or the IPv6 one (RFC 8200 8.1: src, dst,
    /// 32-bit upper-layer length, zeros, next header), chosen by the addresses' family.
    /// `length` is the upper-layer length (header plus data).
    @inlinable
    public static func pseudoHeader(source: IPAddress, destination: IPAddress,
                                    protocol proto: UInt8, length: Int) -> UInt32 {
        var acc = addressSum(source) + addressSum(destination)
        acc += UInt64(proto)
        let len = UInt64(truncatingIfNeeded: UInt32(truncatingIfNeeded: length))
        acc += (len >> 16) + (len & 0xffff)
        return fold(acc)
    }

    /// The sum of an address's 16-bit words (2 for IPv4, 8 for IPv6), unfolded.
    @inlinable
    static func addressSum(_ a: IPAddress) -> UInt64 {
        if a.family == .inet {
            let v = UInt64(a.v4)
            return (v >> 16) + (v & 0xffff)
        }
        return wordSum(a.hi) + wordSum(a.lo)
    }

    @inlinable
    static func wordSum(_ w: UInt64) -> UInt64 {
        (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff)
    }

    // MARK: incremental update, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')

    /// The checksum after one 16-bit word of the covered data changes from `old` to
    /// `new`. Unlike RFC 1141's form, eqn. 3 agrees with a full recomputation in the
    /// corner RFC 1624 section 3 shows (the result 0x0000, not 0xffff).
    /// A UDP checksum must then be mapped 0 -> 0xffff by the caller (UDPHeader does).
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        let acc = UInt64(~checksum) + UInt64(~old) + UInt64(new)
        return ~UInt16(truncatingIfNeeded: fold(acc))
    }

    /// The checksum after a 32-bit field (two aligned words) changes.
    @inlinable
    public static func update(_ checksum: UInt16, old32 old: UInt32, new32 new: UInt32) -> UInt16 {
        var acc = UInt64(~checksum)
        acc += UInt64(~UInt16(truncatingIfNeeded: old >> 16)) + UInt64(~UInt16(truncatingIfNeeded: old))
        acc += UInt64(new >> 16) + UInt64(new & 0xffff)
        return ~UInt16(truncatingIfNeeded: fold(acc))
    }

    /// The checksum after an address in the covered data (or the pseudo-header) changes:
    /// 4 bytes for IPv4, 16 for IPv6. Both addresses must be of the same family.
    @inlinable
    public static func update(_ checksum: UInt16, oldAddress old: IPAddress, newAddress new: IPAddress) -> UInt16 {
        // ~m summed word by word is (count * 0xffff) - sum(m); add it as complements.
        let words: UInt64 = old.family == .inet ? 2 : 8
        let acc = UInt64(~checksum) + (words * 0xffff - addressSum(old)) + addressSum(new)
        return ~UInt16(truncatingIfNeeded: fold(acc))
    }

    /// The checksum after a single byte changes; `highByte` when it is the first byte of
    /// its 16-bit word (e.g. IPv4 TTL is high, protocol is low).
    @inlinable
    public static func update(_ checksum: UInt16, oldByte: UInt8, newByte: UInt8, highByte: Bool) -> UInt16 {
        highByte
            ? update(checksum, old: UInt16(oldByte) << 8, new: UInt16(newByte) << 8)
            : update(checksum, old: UInt16(oldByte), new: UInt16(newByte))
    }

    // MARK: helpers

    /// Folds a sum to 16 bits with end-around carry.
    @inlinable
    public static func fold(_ x: UInt64) -> UInt32 {
        var s = (x & 0xffff_ffff) + (x >> 32)   // < 2^33
        s = (s & 0xffff) + (s >> 16)            // < 2^17 + 2^16
        s = (s & 0xffff) + (s >> 16)            // <= 0xffff + 2
        s = (s & 0xffff) + (s >> 16)
        return UInt32(truncatingIfNeeded: s)
    }

    @inlinable @inline(__always)
    static func addc(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (s, o) = a.addingReportingOverflow(b)
        return s &+ (o ? 1 : 0)
    }
}
