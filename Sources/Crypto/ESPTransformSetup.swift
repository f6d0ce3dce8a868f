// ESPTransform's construction checks: which key sizes and algorithm combinations
// are accepted, which OpenSSL provider a cipher needs, and the CBC IV generator.
// Control path only; every refusal says what is wrong and how to fix it.

import CCrypto

extension ESPTransform {
    static func makeIVGenerator(key: SecretKey?) throws(CryptoError) -> CipherContext {
        if let key {
            return try key.withUnsafeBytes { k in
                Result { () throws(CryptoError) in try CipherContext(name: "AES-128-ECB", key: k, encrypt: true) }
            }.get()
        }
        var random = [UInt8](repeating: 0, count: 16)
        defer { random.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) } }
        guard RAND_bytes(&random, 16) == 1 else { throw CryptoError.openssl("draw a random CBC IV key") }
        return try random.withUnsafeBytes { k in
            Result { () throws(CryptoError) in try CipherContext(name: "AES-128-ECB", key: k, encrypt: true) }
        }.get()
    }

    /// Blowfish and CAST-128 live in OpenSSL's legacy provider.
    static func requireProvider(for encryption: EncryptionAlgorithm, legacyAvailable: Bool) throws(CryptoError) {
        if encryption.cipher.isLegacy && !legacyAvailable {
            throw CryptoError(.providerMissing,
                "\(encryption.name) needs OpenSSL's legacy provider, which is not available: install it (ossl-modules/legacy.so) or choose another cipher")
        }
    }

    static func checkCombination(encryption: EncryptionAlgorithm, encryptionKey: SecretKey?,
                                 integrity: IntegrityAlgorithm?, integrityKey: SecretKey?) throws(CryptoError) {
        let cipher = encryption.cipher
        if cipher == .null {
            if let key = encryptionKey, key.count > 0 {
                throw CryptoError(.keySize, "enc null takes no key: remove the enckey")
            }
            if integrity == nil {
                throw CryptoError(.combination,
                    "enc null without an auth algorithm protects nothing: add an auth algorithm (e.g. auth hmac-sha2-256) or choose a cipher")
            }
        } else {
            guard let key = encryptionKey else {
                throw CryptoError(.keySize, "\(encryption.name) needs an encryption key of \(encryption.keySizeText)")
            }
            guard encryption.accepts(keyMaterialBits: key.bits) else {
                let salt = cipher.saltBits > 0 ? ", the last 32 of them the salt/nonce" : ""
                let step = encryption.keyBits.count > 1 ? " in steps of \(encryption.keyStep) bits" : ""
                throw CryptoError(.keySize,
                    "\(encryption.name) needs an encryption key of \(encryption.keySizeText)\(step)\(salt); got \(key.bits) bits")
            }
        }
        if cipher.isCombined, let integrity {
            throw CryptoError(.combination,
                "\(encryption.name) authenticates by itself and takes no auth algorithm: remove auth \(integrity.name)")
        }
        if let integrity {
            guard let key = integrityKey else {
                throw CryptoError(.keySize, "\(integrity.name) needs an authentication key of \(integrity.keyBits) bits")
            }
            guard key.bits == integrity.keyBits else {
                throw CryptoError(.keySize,
                    "\(integrity.name) needs an authentication key of exactly \(integrity.keyBits) bits; got \(key.bits) bits")
            }
        } else if integrityKey != nil {
            throw CryptoError(.combination, "an authentication key was given without an auth algorithm")
        }
    }
}
