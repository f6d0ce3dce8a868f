// Key material: held in memory this type owns, locked in RAM where the process may
// (mlock: never swapped), compared in constant time, wiped with OPENSSL_cleanse when
// released, and never printed by `description`. encd also turns core dumps off
// (EncDaemon), so keys do not end up on disk that way either.

#if canImport(Glibc)
import Glibc
#endif
import CCrypto
import EncCore

public final class SecretKey: @unchecked Sendable, Equatable, CustomStringConvertible {
    public let count: Int
    private let storage: UnsafeMutableRawBufferPointer

    public init(_ bytes: [UInt8]) {
        count = bytes.count
        storage = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
        _ = mlock(storage.baseAddress, storage.count)      // best effort: RLIMIT_MEMLOCK may refuse
        bytes.withUnsafeBytes { src in
            if let p = src.baseAddress, src.count > 0 { storage.baseAddress!.copyMemory(from: p, byteCount: src.count) }
        }
    }

    /// Parses hex as ipsec.conf writes keys: an optional 0x prefix, then an even
    /// number of hex digits. Returns nil on anything else.
    public convenience init?(hex text: String) {
        var digits = Substring(text)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
        guard !digits.isEmpty, digits.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(digits.count / 2)
        var it = digits.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let h = a.hexDigitValue, let l = b.hexDigitValue else { return nil }
            out.append(UInt8(h << 4 | l))
        }
        self.init(out)
        out.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
    }

    deinit {
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        _ = munlock(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    public var bits: Int { count * 8 }

    /// Read access for building crypto contexts; do not copy the bytes out.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.baseAddress, count: count))
    }

    /// The first `n` bytes and the rest, for keys that carry a salt at their end.
    public func split(at n: Int) -> (SecretKey, SecretKey) {
        precondition(n >= 0 && n <= count)
        return withUnsafeBytes { raw in
            (SecretKey(Array(raw[0..<n])), SecretKey(Array(raw[n..<count])))
        }
    }

    /// "0x…" for `encctl -k` only.
    public var hexForDisplay: String {
        withUnsafeBytes { raw in
            "0x" + Hex.encode(raw)
        }
    }

    public var description: String { "<\(bits)-bit key>" }

    public static func == (a: SecretKey, b: SecretKey) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, x.count) == 0 } }
    }
}
