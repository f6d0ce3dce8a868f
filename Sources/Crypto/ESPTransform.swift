// ESP's cryptographic transform for one SA in one direction (RFC 4303).
//
// Stages of `seal` (outbound), in order, all in place in the caller's buffer:
//   1. length check: the payload (data, padding, pad length, next header) fits and
//      is a multiple of the cipher's block size
//   2. IV: counter and combined modes write the 64-bit sequence number (big-endian;
//      it never repeats under one key, which RFC 3686/4106/4543/7634 require); CBC
//      writes AES-128 of the sequence number under a random per-transform key, which
//      is unpredictable (RFC 4303 §3.2, NIST SP 800-38A App. C) and needs no DRBG
//      call per packet
//   3. cipher: AES-CBC/3DES/Blowfish/CAST-128 or AES-CTR encrypt the payload; GCM and
//      ChaCha20-Poly1305 encrypt it with AAD = SPI || [seq high] || seq low and write
//      the 16-byte tag as ICV; GMAC encrypts nothing and writes the tag over
//      AAD = SPI || [seq high] || seq low || IV || payload
//   4. ICV (encrypt-then-MAC): HMAC over SPI .. end of ciphertext, then the ESN high
//      word when ESN is on (RFC 4303 §3.3.2.1: used, never transmitted), truncated
// Stages of `open` (inbound) mirror them: length/block check → for encrypt-then-MAC
// the ICV is verified first, in constant time, and only then is the payload
// decrypted; for combined modes the payload is decrypted and the tag checked by
// OpenSSL in one pass (the payload is unspecified unless the verdict is .ok).
//
// Per-SA state (built once in init, re-used by every packet, wiped on deinit):
// an encrypting and a decrypting EVP cipher context keyed with the SA key, the
// keyed HMAC (Authenticator), for CBC the IV generator's ECB context, and a 64-byte
// scratch holding the salt/nonce, the counter block and the AAD. Per packet only the
// IV is set (EVP_CipherInit_ex without cipher or key): nothing is allocated.
//
// Parallelism and order: none inside a transform. It is not thread-safe; each SA
// direction owns one, used by one thread at a time. The caller assigns sequence
// numbers (and so the IVs) and keeps packet order per SA.

import CCrypto

/// The outcome of opening one ESP packet; the caller counts each non-.ok verdict.
public enum CryptoVerdict: Sendable, Equatable {
    case ok
    /// The ICV or AEAD tag did not match: "packets that failed verification".
    case authenticationFailed
    /// Too short for SPI + sequence + IV + ICV + pad length + next header, or the
    /// ciphertext is not a multiple of the block size.
    case badLength
    /// libcrypto failed: "packets that failed crypto processing".
    case failed
}

public final class ESPTransform: @unchecked Sendable {
    public let encryption: EncryptionAlgorithm
    public let integrity: IntegrityAlgorithm?
    /// Bytes of IV after the sequence number.
    public let ivLength: Int
    /// The cipher's block size (1 for counter, stream and combined modes).
    public let blockSize: Int
    /// The payload through next header must be a multiple of this (RFC 4303 §2.4).
    public let padAlignment: Int
    /// Bytes of ICV at the end: 16 for combined modes, the HMAC's truncation
    /// otherwise, 0 without authentication.
    public let icvLength: Int

    private enum Mode { case null, cbc, ctr, aead, gmac }
    private let mode: Mode
    private let encryptor: CipherContext?
    private let decryptor: CipherContext?
    private let ivGenerator: CipherContext?
    private let authenticator: Authenticator?

    // Scratch layout: [0,16) nonce or counter block (salt || IV || counter),
    // [16,28) AAD, [32,48) the CBC IV generator's block.
    private let scratch: UnsafeMutableRawPointer
    private static let scratchSize = 64
    private static let aadOffset = 16
    private static let ivBlockOffset = 32

    /// Builds the transform of one SA direction. `encryptionKey` carries the 4-byte
    /// salt/nonce at its end for aesctr, GCM, GMAC and ChaCha20-Poly1305, as
    /// OpenBSD's ipsec.conf and Linux's ip-xfrm write keys.
    public convenience init(encryption: EncryptionAlgorithm, encryptionKey: SecretKey?,
                            integrity: IntegrityAlgorithm?, integrityKey: SecretKey?) throws(CryptoError) {
        try self.init(encryption: encryption, encryptionKey: encryptionKey,
                      integrity: integrity, integrityKey: integrityKey, cbcIVKey: nil)
    }

    /// `cbcIVKey` fixes the CBC IV generator's key (16 bytes) so that tests can
    /// compare two transforms' output; nil draws it from RAND_bytes.
    init(encryption: EncryptionAlgorithm, encryptionKey: SecretKey?,
         integrity: IntegrityAlgorithm?, integrityKey: SecretKey?, cbcIVKey: SecretKey?) throws(CryptoError) {
        let cipher = encryption.cipher
        try Self.checkCombination(encryption: encryption, encryptionKey: encryptionKey,
                                  integrity: integrity, integrityKey: integrityKey)
        CryptoProviders.load()
        try Self.requireProvider(for: encryption, legacyAvailable: CryptoProviders.isLegacyAvailable)

        self.encryption = encryption
        self.integrity = integrity
        ivLength = cipher.ivLength
        blockSize = cipher.blockSize
        padAlignment = cipher.padAlignment
        icvLength = cipher.isCombined ? cipher.combinedICVLength : (integrity?.icvLength ?? 0)
        switch cipher {
        case .null: mode = .null
        case .aesCBC, .tripleDESCBC, .blowfishCBC, .cast128CBC: mode = .cbc
        case .aesCTR: mode = .ctr
        case .aesGCM, .chacha20Poly1305: mode = .aead
        case .aesGMAC: mode = .gmac
        }

        let scratch = UnsafeMutableRawPointer.allocate(byteCount: Self.scratchSize, alignment: 16)
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: Self.scratchSize)
        self.scratch = scratch
        // From here on a throw runs deinit only for fully initialised objects, so
        // the scratch is released by hand if building a context fails.
        do throws(CryptoError) {
            if let key = encryptionKey, cipher != .null {
                let saltBytes = cipher.saltBits / 8
                let cipherKeyBytes = key.count - saltBytes
                let name = cipher.opensslName(keyBits: cipherKeyBytes * 8)!
                // SecretKey.withUnsafeBytes rethrows untyped errors: carry ours in a Result.
                (encryptor, decryptor) = try key.withUnsafeBytes { raw in
                    Result { () throws(CryptoError) in
                        let k = UnsafeRawBufferPointer(rebasing: raw[0..<cipherKeyBytes])
                        if saltBytes > 0 { scratch.copyMemory(from: raw.baseAddress! + cipherKeyBytes, byteCount: saltBytes) }
                        return (try CipherContext(name: name, key: k, encrypt: true),
                                try CipherContext(name: name, key: k, encrypt: false))
                    }
                }.get()
            } else {
                (encryptor, decryptor) = (nil, nil)
            }
            if cipher == .aesCTR {
                // RFC 3686 §4: the block counter starts at 1 for every packet.
                scratch.storeBytes(of: UInt32(1).bigEndian, toByteOffset: 12, as: UInt32.self)
            }
            ivGenerator = mode == .cbc ? try Self.makeIVGenerator(key: cbcIVKey) : nil
            if let integrity, let integrityKey {
                authenticator = try Authenticator(algorithm: integrity, key: integrityKey)
            } else {
                authenticator = nil
            }
        } catch {
            OPENSSL_cleanse(scratch, Self.scratchSize)
            scratch.deallocate()
            throw error
        }
    }

    deinit {
        OPENSSL_cleanse(scratch, Self.scratchSize)     // the salt is key material
        scratch.deallocate()
    }

    // MARK: seal

    /// Encrypts and authenticates one outbound packet in place. `esp` starts at the
    /// SPI: [0,4) SPI and [4,8) the low 32 bits of `sequence`, both written by the
    /// caller; [8, 8+ivLength) the IV, written here; then the payload (data, padding,
    /// pad length, next header) aligned to `padAlignment` by the caller; then
    /// `icvLength` bytes for the ICV, written here. `esn` says whether the SA uses
    /// extended sequence numbers (the high 32 bits of `sequence` are authenticated).
    /// Returns false only on a bad length or an internal libcrypto failure.
    public func seal(_ esp: UnsafeMutableRawBufferPointer, sequence: UInt64, esn: Bool) -> Bool {
        guard let base = esp.baseAddress else { return false }
        let payloadStart = 8 + ivLength
        let icvStart = esp.count - icvLength
        let payloadLength = icvStart - payloadStart
        guard payloadLength >= 2, payloadLength % blockSize == 0 else { return false }
        let iv = base + 8, payload = base + payloadStart, icv = base + icvStart
        let high = UInt32(truncatingIfNeeded: sequence >> 32)

        var ok = true
        switch mode {
        case .null:
            break
        case .cbc:
            ok = writeCBCIV(iv, sequence: sequence)
                && encryptor!.start(iv: iv)
                && encryptor!.transform(payload, count: payloadLength)
        case .ctr:
            iv.storeBytes(of: sequence.bigEndian, as: UInt64.self)
            ok = startCounter(encryptor!, iv: iv)
                && encryptor!.transform(payload, count: payloadLength)
        case .aead:
            iv.storeBytes(of: sequence.bigEndian, as: UInt64.self)
            let aadLength = fillAAD(base, high: high, esn: esn)
            ok = startNonce(encryptor!, iv: iv)
                && encryptor!.authenticate(scratch + Self.aadOffset, count: aadLength)
                && encryptor!.transform(payload, count: payloadLength)
                && encryptor!.finish()
                && encryptor!.tag(into: icv, count: icvLength)
        case .gmac:
            iv.storeBytes(of: sequence.bigEndian, as: UInt64.self)
            ok = startNonce(encryptor!, iv: iv)
                && authenticateGMAC(encryptor!, base, icvStart: icvStart, high: high, esn: esn)
                && encryptor!.finish()
                && encryptor!.tag(into: icv, count: icvLength)
        }
        if ok, let auth = authenticator {
            macOver(auth, base, icvStart: icvStart, high: high, esn: esn)
            ok = auth.finish(into: icv)
        }
        if !ok { ERR_clear_error() }
        return ok
    }

    // MARK: open

    /// Verifies and decrypts one inbound packet in place (layout as for `seal`).
    /// `sequenceHigh` is the ESN high word the replay window inferred for this
    /// packet (ignored unless `esn`). On .ok the plaintext payload sits at
    /// [8+ivLength, count-icvLength); on any other verdict its content is
    /// unspecified and the packet must be dropped.
    public func open(_ esp: UnsafeMutableRawBufferPointer, sequenceHigh: UInt32, esn: Bool) -> CryptoVerdict {
        guard let base = esp.baseAddress else { return .badLength }
        let payloadStart = 8 + ivLength
        let icvStart = esp.count - icvLength
        let payloadLength = icvStart - payloadStart
        guard payloadLength >= 2, payloadLength % blockSize == 0 else { return .badLength }
        let iv = base + 8, payload = base + payloadStart, icv = base + icvStart

        var verdict = CryptoVerdict.ok
        switch mode {
        case .null, .cbc, .ctr:
            if let auth = authenticator {
                macOver(auth, base, icvStart: icvStart, high: sequenceHigh, esn: esn)
                verdict = auth.check(icv)
                guard verdict == .ok else { break }
            }
            if mode == .cbc {
                verdict = decryptor!.start(iv: iv) && decryptor!.transform(payload, count: payloadLength) ? .ok : .failed
            } else if mode == .ctr {
                verdict = startCounter(decryptor!, iv: iv) && decryptor!.transform(payload, count: payloadLength) ? .ok : .failed
            }
        case .aead:
            let aadLength = fillAAD(base, high: sequenceHigh, esn: esn)
            guard startNonce(decryptor!, iv: iv),
                  decryptor!.authenticate(scratch + Self.aadOffset, count: aadLength),
                  decryptor!.transform(payload, count: payloadLength),
                  decryptor!.expectTag(icv, count: icvLength) else { verdict = .failed; break }
            verdict = decryptor!.finish() ? .ok : .authenticationFailed
        case .gmac:
            guard startNonce(decryptor!, iv: iv),
                  authenticateGMAC(decryptor!, base, icvStart: icvStart, high: sequenceHigh, esn: esn),
                  decryptor!.expectTag(icv, count: icvLength) else { verdict = .failed; break }
            verdict = decryptor!.finish() ? .ok : .authenticationFailed
        }
        if verdict != .ok { ERR_clear_error() }
        return verdict
    }

    // MARK: per-packet helpers

    /// GCM, GMAC and ChaCha20-Poly1305: nonce = salt (4, from the key) || IV (8).
    @inline(__always)
    private func startNonce(_ ctx: CipherContext, iv: UnsafeRawPointer) -> Bool {
        (scratch + 4).copyMemory(from: iv, byteCount: 8)
        return ctx.start(iv: scratch)
    }

    /// AES-CTR (RFC 3686 §4): counter block = nonce (4) || IV (8) || 00000001.
    @inline(__always)
    private func startCounter(_ ctx: CipherContext, iv: UnsafeRawPointer) -> Bool {
        (scratch + 4).copyMemory(from: iv, byteCount: 8)
        return ctx.start(iv: scratch)
    }

    /// AEAD AAD (RFC 4106 §5, RFC 7634 §2.1): SPI || seq low, or with ESN
    /// SPI || seq high || seq low. Returns its length.
    @inline(__always)
    private func fillAAD(_ base: UnsafeMutableRawPointer, high: UInt32, esn: Bool) -> Int {
        let aad = scratch + Self.aadOffset
        aad.copyMemory(from: base, byteCount: 4)
        if esn {
            aad.storeBytes(of: high.bigEndian, toByteOffset: 4, as: UInt32.self)
            (aad + 8).copyMemory(from: base + 4, byteCount: 4)
            return 12
        }
        (aad + 4).copyMemory(from: base + 4, byteCount: 4)
        return 8
    }

    /// GMAC (RFC 4543 §3.3, §5): everything is AAD — SPI, [seq high], seq low, IV
    /// and the payload; nothing is encrypted.
    @inline(__always)
    private func authenticateGMAC(_ ctx: CipherContext, _ base: UnsafeMutableRawPointer,
                                  icvStart: Int, high: UInt32, esn: Bool) -> Bool {
        guard esn else { return ctx.authenticate(base, count: icvStart) }
        let aad = scratch + Self.aadOffset
        aad.copyMemory(from: base, byteCount: 4)
        aad.storeBytes(of: high.bigEndian, toByteOffset: 4, as: UInt32.self)
        return ctx.authenticate(aad, count: 8) && ctx.authenticate(base + 4, count: icvStart - 4)
    }

    /// Encrypt-then-MAC input (RFC 4303 §2.2.1, §3.3.2.1): SPI .. end of ciphertext,
    /// then the ESN high word, which is authenticated but not sent.
    @inline(__always)
    private func macOver(_ auth: Authenticator, _ base: UnsafeMutableRawPointer,
                         icvStart: Int, high: UInt32, esn: Bool) {
        auth.reset()
        auth.update(UnsafeRawBufferPointer(start: base, count: icvStart))
        if esn { auth.update(bigEndian: high) }
    }

    /// CBC IV: the first ivLength bytes of AES-128-ECB(0^64 || sequence) under the
    /// transform's private random key. Distinct sequence numbers give distinct,
    /// unpredictable blocks; the key is independent of the SA key, so two SAs that
    /// share a key still get unrelated IVs.
    @inline(__always)
    private func writeCBCIV(_ iv: UnsafeMutableRawPointer, sequence: UInt64) -> Bool {
        let block = scratch + Self.ivBlockOffset
        block.storeBytes(of: 0, as: UInt64.self)
        block.storeBytes(of: sequence.bigEndian, toByteOffset: 8, as: UInt64.self)
        guard ivGenerator!.transform(block, count: 16) else { return false }
        iv.copyMemory(from: block, byteCount: ivLength)
        return true
    }
}
