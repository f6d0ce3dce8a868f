// IPv4/IPv6 addresses and prefixes as plain values: two 64-bit words and a family,
// so they hash and compare without allocation (SAD and SPD keys on the packet path).

#if canImport(Glibc)
import Glibc
#endif

public enum AddressFamily: UInt8, Sendable, Hashable, CustomStringConvertible {
    case inet = 4, inet6 = 6
    public var bitCount: Int { self == .inet ? 32 : 128 }
    public var description: String { self == .inet ? "inet" : "inet6" }
}

public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Network-order bits, left aligned: an IPv4 address sits in the top 32 bits of `hi`.
    public var hi: UInt64
    public var lo: UInt64
    public var family: AddressFamily

    public init(family: AddressFamily, hi: UInt64, lo: UInt64) {
        self.family = family
        self.hi = hi
        self.lo = lo
    }

    public init(v4: UInt32) {
        self.init(family: .inet, hi: UInt64(v4) << 32, lo: 0)
    }

    public var v4: UInt32 { UInt32(truncatingIfNeeded: hi >> 32) }

    /// Reads an address of `family` from raw packet memory (network order).
    public init(family: AddressFamily, bytes: UnsafeRawPointer) {
        if family == .inet {
            self.init(v4: UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self)))
        } else {
            self.init(family: .inet6,
                      hi: UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self)),
                      lo: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }

    /// Writes the address in network order (4 or 16 bytes).
    public func write(to bytes: UnsafeMutableRawPointer) {
        if family == .inet {
            bytes.storeBytes(of: v4.bigEndian, as: UInt32.self)
        } else {
            bytes.storeBytes(of: hi.bigEndian, as: UInt64.self)
            bytes.storeBytes(of: lo.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
    }

    public var byteCount: Int { family == .inet ? 4 : 16 }

    /// The address in network order, as bytes (control path).
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount)
        out.withUnsafeMutableBytes { write(to: $0.baseAddress!) }
        return out
    }

    /// Parses a numeric IPv4 or IPv6 address; host names are not resolved.
    public init?(_ text: String) {
        var v6 = in6_addr()
        var v4 = in_addr()
        if text.contains(":") {
            guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
            self = withUnsafeBytes(of: &v6) { IPAddress(family: .inet6, bytes: $0.baseAddress!) }
        } else {
            guard inet_pton(AF_INET, text, &v4) == 1 else { return nil }
            self = withUnsafeBytes(of: &v4) { IPAddress(family: .inet, bytes: $0.baseAddress!) }
        }
    }

    public var description: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let raw = bytes
        let af = family == .inet ? AF_INET : AF_INET6
        _ = raw.withUnsafeBytes { inet_ntop(af, $0.baseAddress, &buf, socklen_t(buf.count)) }
        return String(cString: buf)
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        (a.family.rawValue, a.hi, a.lo) < (b.family.rawValue, b.hi, b.lo)
    }

    public static func any(_ family: AddressFamily) -> IPAddress { IPAddress(family: family, hi: 0, lo: 0) }

    public var isUnspecified: Bool { hi == 0 && lo == 0 }

    /// The address with all bits past `length` cleared.
    public func masked(_ length: Int) -> IPAddress {
        let (mh, ml) = IPAddress.maskWords(length)
        return IPAddress(family: family, hi: hi & mh, lo: lo & ml)
    }

    @inline(__always) static func maskWords(_ length: Int) -> (UInt64, UInt64) {
        let hiMask: UInt64 = length <= 0 ? 0 : (length >= 64 ? ~0 : ~0 << UInt64(64 - length))
        let loMask: UInt64 = length <= 64 ? 0 : (length >= 128 ? ~0 : ~0 << UInt64(128 - length))
        return (hiMask, loMask)
    }
}

/// An address and a prefix length, the network bits only (host bits are cleared).
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init(_ address: IPAddress, length: Int) {
        precondition(length >= 0 && length <= address.family.bitCount)
        self.address = address.masked(length)
        self.length = length
    }

    public init(host: IPAddress) { self.init(host, length: host.family.bitCount) }

    /// `any` in OpenBSD's grammar: 0.0.0.0/0 or ::/0.
    public static func any(_ family: AddressFamily) -> IPPrefix { IPPrefix(.any(family), length: 0) }

    public var family: AddressFamily { address.family }
    public var isHost: Bool { length == address.family.bitCount }

    /// Parses "a.b.c.d", "a.b.c.d/len", "x::y" or "x::y/len". Host bits must be zero
    /// unless `allowHostBits` (then they are cleared).
    public init?(_ text: String, allowHostBits: Bool = true) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let addr = IPAddress(String(parts[0])) else { return nil }
        var len = addr.family.bitCount
        if parts.count == 2 {
            guard let l = Int(parts[1]), l >= 0, l <= addr.family.bitCount else { return nil }
            len = l
        }
        if !allowHostBits && addr.masked(len) != addr { return nil }
        self.init(addr, length: len)
    }

    @inline(__always) public func contains(_ a: IPAddress) -> Bool {
        guard a.family == address.family else { return false }
        let (mh, ml) = IPAddress.maskWords(length)
        return (a.hi & mh) == address.hi && (a.lo & ml) == address.lo
    }

    /// OpenBSD prints a host address without "/len".
    public var description: String { isHost ? "\(address)" : "\(address)/\(length)" }
}
