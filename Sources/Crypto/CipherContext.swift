// One OpenSSL cipher context, keyed once at creation and re-used per packet: each
// packet only sets a new IV (EVP_CipherInit_ex with no cipher and no key), so the
// key schedule is computed once per SA and nothing is allocated per packet.
// Not thread-safe: one context belongs to one SA direction.

import CCrypto

extension Cipher {
    /// OpenSSL's fetch name for this cipher with a key of `keyBits` (salt excluded).
    func opensslName(keyBits: Int) -> String? {
        switch self {
        case .null: return nil
        case .aesCBC: return "AES-\(keyBits)-CBC"
        case .aesCTR: return "AES-\(keyBits)-CTR"
        case .aesGCM, .aesGMAC: return "AES-\(keyBits)-GCM"
        case .chacha20Poly1305: return "ChaCha20-Poly1305"
        case .tripleDESCBC: return "DES-EDE3-CBC"
        case .blowfishCBC: return "BF-CBC"
        case .cast128CBC: return "CAST5-CBC"
        }
    }
}

final class CipherContext {
    private let ctx: OpaquePointer
    /// Scratch for EVP_CipherFinal_ex's output, which is empty for every mode used
    /// here (CBC without padding, stream and AEAD modes) but must point somewhere.
    private let finalScratch: UnsafeMutablePointer<UInt8>

    /// Creates a context for `name` keyed with `key`, encrypting or decrypting.
    /// Variable-length ciphers (Blowfish, CAST-128) take the key's own length.
    init(name: String, key: UnsafeRawBufferPointer, encrypt: Bool) throws(CryptoError) {
        CryptoProviders.load()
        guard let cipher = EVP_CIPHER_fetch(nil, name, nil) else {
            ERR_clear_error()
            throw CryptoError(.providerMissing, "cipher \(name) is not available in this OpenSSL")
        }
        defer { EVP_CIPHER_free(cipher) }     // the context keeps its own reference
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.openssl("allocate a cipher context") }
        self.ctx = ctx
        finalScratch = .allocate(capacity: 32)
        // Fully initialised from here: a throw below runs deinit, which frees both.
        let enc: Int32 = encrypt ? 1 : 0
        guard EVP_CipherInit_ex(ctx, cipher, nil, nil, nil, enc) == 1 else {
            throw CryptoError.openssl("set up \(name)")
        }
        if Int(EVP_CIPHER_CTX_get_key_length(ctx)) != key.count {
            guard EVP_CIPHER_CTX_set_key_length(ctx, Int32(key.count)) == 1 else {
                throw CryptoError(.keySize, "\(name) does not take a \(key.count * 8)-bit key")
            }
        }
        guard EVP_CipherInit_ex(ctx, nil, nil, key.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, enc) == 1 else {
            throw CryptoError.openssl("key \(name)")
        }
        // ESP pads itself. Only a block mode (CBC) would pad, and only there is padding
        // turned off: OpenSSL 3.0 repeats a context's no-padding setting to the provider
        // (a parameter set, looked up by name) on every EVP_CipherInit_ex, that is on
        // every packet, and GCM, CTR and ChaCha20-Poly1305 (block size 1) never pad.
        if EVP_CIPHER_CTX_get_block_size(ctx) > 1 {
            guard EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 else { throw CryptoError.openssl("key \(name)") }
        }
    }

    deinit {
        EVP_CIPHER_CTX_free(ctx)           // cleanses the key schedule
        finalScratch.deallocate()
    }

    /// Starts a new message under the existing key with this IV or nonce.
    @inline(__always)
    func start(iv: UnsafeRawPointer) -> Bool {
        EVP_CipherInit_ex(ctx, nil, nil, nil, iv.assumingMemoryBound(to: UInt8.self), -1) == 1
    }

    /// Feeds additional authenticated data (AEAD modes only), before any payload.
    @inline(__always)
    func authenticate(_ p: UnsafeRawPointer, count: Int) -> Bool {
        guard count > 0 else { return true }
        guard count <= Int(Int32.max) else { return false }
        var outl: Int32 = 0
        return EVP_CipherUpdate(ctx, nil, &outl, p.assumingMemoryBound(to: UInt8.self), Int32(count)) == 1
    }

    /// Encrypts or decrypts `count` bytes in place (OpenSSL allows out == in).
    @inline(__always)
    func transform(_ p: UnsafeMutableRawPointer, count: Int) -> Bool {
        guard count > 0 else { return true }
        guard count <= Int(Int32.max) else { return false }
        let bytes = p.assumingMemoryBound(to: UInt8.self)
        var outl: Int32 = 0
        return EVP_CipherUpdate(ctx, bytes, &outl, bytes, Int32(count)) == 1 && Int(outl) == count
    }

    /// Ends the message. For AEAD decryption this is where the tag is checked.
    @inline(__always)
    func finish() -> Bool {
        var outl: Int32 = 0
        return EVP_CipherFinal_ex(ctx, finalScratch, &outl) == 1 && outl == 0
    }

    /// Copies the AEAD tag of the message just finished (encryption).
    @inline(__always)
    func tag(into p: UnsafeMutableRawPointer, count: Int) -> Bool {
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, Int32(count), p) == 1
    }

    /// Sets the tag the message must carry (decryption), before `finish`.
    @inline(__always)
    func expectTag(_ p: UnsafeRawPointer, count: Int) -> Bool {
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, Int32(count), UnsafeMutableRawPointer(mutating: p)) == 1
    }
}
