// HMAC with truncation, for ESP's separate integrity algorithm and for AH.
//
// Stages per packet: reset (re-use the key: EVP_MAC_init with no key) → update over
// the covered bytes, in as many pieces as the caller likes → finish (truncate to the
// ICV length) or verify (finish, then compare in constant time with CRYPTO_memcmp).
// The EVP_MAC context is created and keyed once per SA direction.
//
// Per-SA state: the keyed EVP_MAC context and a 64-byte scratch for the full digest
// (wiped on deinit). Not thread-safe: one Authenticator belongs to one SA direction.
//
// Note on allocation: encd allocates nothing here per packet. OpenSSL 3.0 itself
// duplicates its digest state on each HMAC reset and final (EVP_MD_CTX_copy_ex);
// later OpenSSL releases avoid that copy. It is outside encd's control.

import CCrypto

public final class Authenticator: @unchecked Sendable {
    /// Bytes of ICV written by `finish` and compared by `verify`.
    public let icvLength: Int
    private let ctx: OpaquePointer
    private let digest: UnsafeMutableRawPointer        // full HMAC output
    private static let digestCapacity = Int(EVP_MAX_MD_SIZE)
    /// False once a libcrypto call in the current message failed.
    private var healthy = true

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
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            throw CryptoError.openssl("find HMAC")
        }
        defer { EVP_MAC_free(mac) }                     // the context keeps its own reference
        guard let md = EVP_MD_fetch(nil, digest.opensslName, nil) else {
            ERR_clear_error()
            let hint = digest == .ripemd160 && !CryptoProviders.isLegacyAvailable
                ? ": it needs OpenSSL's legacy provider, which is not available; install it or choose another auth algorithm"
                : ": choose another auth algorithm"
            throw CryptoError(.providerMissing, "\(label) is not available in this OpenSSL\(hint)")
        }
        let size = Int(EVP_MD_get_size(md))
        EVP_MD_free(md)
        guard icvLength > 0, icvLength <= size else {
            throw CryptoError(.keySize, "\(label) cannot give a \(icvLength)-byte ICV")
        }
        guard let ctx = EVP_MAC_CTX_new(mac) else { throw CryptoError.openssl("allocate an HMAC context") }
        self.ctx = ctx
        self.icvLength = icvLength
        self.digest = UnsafeMutableRawPointer.allocate(byteCount: Self.digestCapacity, alignment: 16)
        let ok: Bool = digest.opensslName.withCString { dname in
            var params = [
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, UnsafeMutablePointer(mutating: dname), 0),
                OSSL_PARAM_construct_end(),
            ]
            // SecretKey's storage is never a NULL pointer, even for an empty key,
            // which OpenSSL needs to tell "set this key" from "re-use the key".
            return key.withUnsafeBytes { k in
                EVP_MAC_init(ctx, k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count, &params) == 1
            }
        }
        guard ok else { throw CryptoError.openssl("key \(label)") }
    }

    deinit {
        OPENSSL_cleanse(digest, Self.digestCapacity)
        digest.deallocate()
        EVP_MAC_CTX_free(ctx)                           // cleanses the HMAC key pads
    }

    /// Starts a new message under the same key.
    public func reset() {
        healthy = EVP_MAC_init(ctx, nil, 0, nil) == 1
    }

    /// Adds bytes to the message.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, let p = bytes.baseAddress else { return }
        if EVP_MAC_update(ctx, p.assumingMemoryBound(to: UInt8.self), bytes.count) != 1 { healthy = false }
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
        var outl = 0
        let ok = healthy
            && EVP_MAC_final(ctx, digest.assumingMemoryBound(to: UInt8.self), &outl, Self.digestCapacity) == 1
            && outl >= icvLength
        if !ok { ERR_clear_error() }
        healthy = true
        return ok
    }
}
