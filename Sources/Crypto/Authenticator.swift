// HMAC with truncation, for ESP's separate integrity algorithm and for AH.
//
// Stages per packet: reset (copy the keyed inner state into the working state) →
// update over the covered bytes, in as many pieces as the caller likes → finish:
// inner digest, then the keyed outer state over it (RFC 2104) → truncate to the ICV
// length, or verify (compare in constant time with CRYPTO_memcmp).
//
// Per-SA state, built once per SA direction and wiped on deinit: three digest
// contexts side by side — the state after key XOR ipad, the state after key XOR
// opad, and the working state — plus a 64-byte scratch for the full digest. Not
// thread-safe: one Authenticator belongs to one SA direction.
//
// Why the low-level digest functions (SHA256_Init/Update/Final and friends) rather
// than EVP_MAC: in OpenSSL 3.0 every EVP_MAC_init/EVP_MAC_final of an HMAC, and
// every EVP_DigestInit_ex or EVP_MD_CTX_copy_ex, allocates and frees a provider
// context (two heap allocations per packet, counted by encbench). Restoring a
// precomputed pad state is a plain copy of the context struct, so nothing is
// allocated; the compression functions (SHA-NI/AVX2 assembly) are the same ones the
// default provider runs. These functions bypass the provider layer, so a FIPS
// provider configuration does not apply to them. Availability is still asked of the
// providers at init (EVP_MD_fetch), so an algorithm OpenSSL does not offer is refused
// as before.

import CCrypto

public final class Authenticator: @unchecked Sendable {
    /// Bytes of ICV written by `finish` and compared by `verify`.
    public let icvLength: Int
    private let engine: DigestEngine
    /// [inner | outer | work], each `DigestEngine.contextStride` bytes.
    private let contexts: UnsafeMutableRawPointer
    private let digest: UnsafeMutableRawPointer        // full HMAC output
    private static let digestCapacity = Int(EVP_MAX_MD_SIZE)
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    /// False once a libcrypto call in the current message failed.
    @exclusivity(unchecked) private var healthy = true

    private var inner: UnsafeMutableRawPointer { contexts }
    private var outer: UnsafeMutableRawPointer { contexts + DigestEngine.contextStride }
    private var work: UnsafeMutableRawPointer { contexts + 2 * DigestEngine.contextStride }

    /// An HMAC for `algorithm`, keyed with `key`, whose length must be exactly the
    /// algorithm's key size (ipsec.conf(5)).
    public convenience init(algorithm: IntegrityAlgorithm, key: SecretKey) throws(CryptoError) {
        guard key.bits == algorithm.keyBits else {
            throw CryptoError(.keySize,
                "\(algorithm.name) needs a \(algorithm.keyBits)-bit key, got \(key.bits) bits: give exactly \(algorithm.keyBits / 4) hex digits")
        }
        try self.init(digest: algorithm.digest, key: key, icvLength: algorithm.icvLength, name: algorithm.name)
    }

    /// Any key length and ICV length up to the digest size: for the published HMAC
    /// vectors (RFC 2202, 4231), whose keys are not IPsec-sized.
    init(digest: Digest, key: SecretKey, icvLength: Int, name: String? = nil) throws(CryptoError) {
        let label = name ?? "HMAC-\(digest.opensslName)"
        CryptoProviders.load()
        guard let md = EVP_MD_fetch(nil, digest.opensslName, nil) else {
            ERR_clear_error()
            let hint = digest == .ripemd160 && !CryptoProviders.isLegacyAvailable
                ? ": it needs OpenSSL's legacy provider, which is not available; install it or choose another auth algorithm"
                : ": choose another auth algorithm"
            throw CryptoError(.providerMissing, "\(label) is not available in this OpenSSL\(hint)")
        }
        EVP_MD_free(md)
        let engine = DigestEngine(digest)
        guard icvLength > 0, icvLength <= engine.outputLength else {
            throw CryptoError(.keySize, "\(label) cannot give a \(icvLength)-byte ICV")
        }
        self.engine = engine
        self.icvLength = icvLength
        contexts = .allocate(byteCount: 3 * DigestEngine.contextStride, alignment: 16)
        contexts.initializeMemory(as: UInt8.self, repeating: 0, count: 3 * DigestEngine.contextStride)
        self.digest = .allocate(byteCount: Self.digestCapacity, alignment: 16)
        self.digest.initializeMemory(as: UInt8.self, repeating: 0, count: Self.digestCapacity)
        // Fully initialised from here: a throw below runs deinit, which wipes and frees.
        guard key.withUnsafeBytes({ precomputePads(key: $0) }) else { throw CryptoError.openssl("key \(label)") }
    }

    deinit {
        OPENSSL_cleanse(contexts, 3 * DigestEngine.contextStride)   // key-derived states
        contexts.deallocate()
        OPENSSL_cleanse(digest, Self.digestCapacity)
        digest.deallocate()
    }

    /// RFC 2104: K0 = key (hashed first if longer than a block), zero-padded to a
    /// block; inner state = H state after K0 XOR ipad, outer after K0 XOR opad.
    private func precomputePads(key: UnsafeRawBufferPointer) -> Bool {
        let block = engine.blockLength
        let pad = UnsafeMutableRawPointer.allocate(byteCount: block, alignment: 16)
        defer {
            OPENSSL_cleanse(pad, block)
            pad.deallocate()
        }
        pad.initializeMemory(as: UInt8.self, repeating: 0, count: block)
        if key.count > block {
            guard engine.start(work), engine.update(work, key.baseAddress!, key.count),
                  engine.finish(work, into: pad) else { return false }
        } else if key.count > 0 {
            pad.copyMemory(from: key.baseAddress!, byteCount: key.count)
        }
        let bytes = pad.assumingMemoryBound(to: UInt8.self)
        for i in 0..<block { bytes[i] ^= 0x36 }
        guard engine.start(inner), engine.update(inner, pad, block) else { return false }
        for i in 0..<block { bytes[i] ^= 0x36 ^ 0x5c }
        guard engine.start(outer), engine.update(outer, pad, block) else { return false }
        OPENSSL_cleanse(work, DigestEngine.contextStride)
        return true
    }

    /// Starts a new message under the same key.
    public func reset() {
        work.copyMemory(from: inner, byteCount: engine.contextLength)
        healthy = true
    }

    /// Adds bytes to the message.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, let p = bytes.baseAddress else { return }
        if !engine.update(work, p, bytes.count) { healthy = false }
    }

    /// Adds the 4 bytes of `value` in network byte order (the ESN high word).
    func update(bigEndian value: UInt32) {
        var be = value.bigEndian
        withUnsafeBytes(of: &be) { update($0) }
    }

    /// Writes the first `icvLength` bytes of the HMAC to `icv`. Returns false (and
    /// writes nothing) if libcrypto failed anywhere in this message.
    @discardableResult
    public func finish(into icv: UnsafeMutableRawPointer) -> Bool {
        guard finishDigest() else { return false }
        icv.copyMemory(from: digest, byteCount: icvLength)
        return true
    }

    /// Finishes the message and compares its ICV with `icv` in constant time.
    public func verify(_ icv: UnsafeRawPointer) -> Bool { check(icv) == .ok }

    /// `verify` that tells a mismatch from a libcrypto failure.
    func check(_ icv: UnsafeRawPointer) -> CryptoVerdict {
        guard finishDigest() else { return .failed }
        return CRYPTO_memcmp(digest, icv, icvLength) == 0 ? .ok : .authenticationFailed
    }

    private func finishDigest() -> Bool {
        let length = engine.outputLength
        var ok = healthy && engine.finish(work, into: digest)       // inner hash
        if ok {
            work.copyMemory(from: outer, byteCount: engine.contextLength)
            ok = engine.update(work, digest, length) && engine.finish(work, into: digest)
        }
        ok = ok && length >= icvLength
        if !ok { ERR_clear_error() }
        healthy = true
        return ok
    }
}

/// The low-level digest functions behind one Digest, on contexts in raw memory.
private struct DigestEngine {
    enum Kind { case md5, sha1, ripemd160, sha256, sha384, sha512 }
    let kind: Kind
    /// Input block (B of RFC 2104) and output (L) in bytes.
    let blockLength: Int
    let outputLength: Int
    /// Bytes of this digest's context struct.
    let contextLength: Int

    /// Room for the largest context, rounded to 16 bytes.
    static let contextStride: Int = {
        let largest = max(MemoryLayout<MD5_CTX>.size, MemoryLayout<SHA_CTX>.size, MemoryLayout<RIPEMD160_CTX>.size,
                          MemoryLayout<SHA256_CTX>.size, MemoryLayout<SHA512_CTX>.size)
        return (largest + 15) & ~15
    }()

    init(_ digest: Digest) {
        switch digest {
        case .md5: (kind, blockLength, outputLength, contextLength) = (.md5, 64, 16, MemoryLayout<MD5_CTX>.size)
        case .sha1: (kind, blockLength, outputLength, contextLength) = (.sha1, 64, 20, MemoryLayout<SHA_CTX>.size)
        case .ripemd160: (kind, blockLength, outputLength, contextLength) = (.ripemd160, 64, 20, MemoryLayout<RIPEMD160_CTX>.size)
        case .sha256: (kind, blockLength, outputLength, contextLength) = (.sha256, 64, 32, MemoryLayout<SHA256_CTX>.size)
        case .sha384: (kind, blockLength, outputLength, contextLength) = (.sha384, 128, 48, MemoryLayout<SHA512_CTX>.size)
        case .sha512: (kind, blockLength, outputLength, contextLength) = (.sha512, 128, 64, MemoryLayout<SHA512_CTX>.size)
        }
    }

    @inline(__always) func start(_ c: UnsafeMutableRawPointer) -> Bool {
        switch kind {
        case .md5: return MD5_Init(c.assumingMemoryBound(to: MD5_CTX.self)) == 1
        case .sha1: return SHA1_Init(c.assumingMemoryBound(to: SHA_CTX.self)) == 1
        case .ripemd160: return RIPEMD160_Init(c.assumingMemoryBound(to: RIPEMD160_CTX.self)) == 1
        case .sha256: return SHA256_Init(c.assumingMemoryBound(to: SHA256_CTX.self)) == 1
        case .sha384: return SHA384_Init(c.assumingMemoryBound(to: SHA512_CTX.self)) == 1
        case .sha512: return SHA512_Init(c.assumingMemoryBound(to: SHA512_CTX.self)) == 1
        }
    }

    @inline(__always) func update(_ c: UnsafeMutableRawPointer, _ p: UnsafeRawPointer, _ n: Int) -> Bool {
        switch kind {
        case .md5: return MD5_Update(c.assumingMemoryBound(to: MD5_CTX.self), p, n) == 1
        case .sha1: return SHA1_Update(c.assumingMemoryBound(to: SHA_CTX.self), p, n) == 1
        case .ripemd160: return RIPEMD160_Update(c.assumingMemoryBound(to: RIPEMD160_CTX.self), p, n) == 1
        case .sha256: return SHA256_Update(c.assumingMemoryBound(to: SHA256_CTX.self), p, n) == 1
        case .sha384: return SHA384_Update(c.assumingMemoryBound(to: SHA512_CTX.self), p, n) == 1
        case .sha512: return SHA512_Update(c.assumingMemoryBound(to: SHA512_CTX.self), p, n) == 1
        }
    }

    /// Writes `outputLength` bytes to `out`.
    @inline(__always) func finish(_ c: UnsafeMutableRawPointer, into out: UnsafeMutableRawPointer) -> Bool {
        let o = out.assumingMemoryBound(to: UInt8.self)
        switch kind {
        case .md5: return MD5_Final(o, c.assumingMemoryBound(to: MD5_CTX.self)) == 1
        case .sha1: return SHA1_Final(o, c.assumingMemoryBound(to: SHA_CTX.self)) == 1
        case .ripemd160: return RIPEMD160_Final(o, c.assumingMemoryBound(to: RIPEMD160_CTX.self)) == 1
        case .sha256: return SHA256_Final(o, c.assumingMemoryBound(to: SHA256_CTX.self)) == 1
        case .sha384: return SHA384_Final(o, c.assumingMemoryBound(to: SHA512_CTX.self)) == 1
        case .sha512: return SHA512_Final(o, c.assumingMemoryBound(to: SHA512_CTX.self)) == 1
        }
    }
}
