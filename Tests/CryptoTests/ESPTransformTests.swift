// ESPTransform behaviour: round trips for every algorithm in the table, with and
// without ESN; tampering; lengths; key checks; IV rules; context re-use.

import Testing
@testable import Crypto

/// Deterministic key material of `bytes` bytes.
private func material(_ bytes: Int, seed: UInt8) -> SecretKey {
    SecretKey((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) })
}

private func usable(_ alg: EncryptionAlgorithm) -> Bool {
    !alg.cipher.isLegacy || CryptoProviders.isLegacyAvailable
}

/// A transform for `alg` with a key of `keyBits` (salt excluded; default the
/// smallest), and hmac-sha2-256 when the cipher needs a separate integrity algorithm.
private func transform(_ alg: EncryptionAlgorithm, keyBits: Int? = nil, auth: IntegrityAlgorithm? = .defaultAuth,
                       cbcIVKey: SecretKey? = nil) throws -> ESPTransform {
    let bits = (keyBits ?? alg.keyBits.lowerBound) + alg.cipher.saltBits
    let encKey = alg.cipher == .null ? nil : material(bits / 8, seed: 1)
    let integrity = alg.cipher.isCombined ? nil : auth
    let authKey = integrity.map { material($0.keyBits / 8, seed: 2) }
    return try ESPTransform(encryption: alg, encryptionKey: encKey, integrity: integrity, integrityKey: authKey,
                            cbcIVKey: cbcIVKey)
}

private let spi: UInt32 = 0x0000_1000
private let esnSequence: UInt64 = 0x0000_0002_ffff_fff0   // high word 2

@Suite struct ESPRoundTrips {
    @Test(arguments: EncryptionAlgorithm.table, [false, true])
    func sealThenOpenRestoresPayload(_ alg: EncryptionAlgorithm, _ esn: Bool) throws {
        guard usable(alg) else { return }
        for bits in Set([alg.keyBits.lowerBound, alg.keyBits.upperBound]) {
            let tx = try transform(alg, keyBits: bits)
            let rx = try transform(alg, keyBits: bits)
            #expect(tx.icvLength == 16)   // the combined tag, or hmac-sha2-256 truncated to 128 bits
            #expect(tx.ivLength == alg.cipher.ivLength)
            #expect(tx.padAlignment == alg.cipher.padAlignment)
            for (n, dataLength) in [0, 1, 37, 64, 1400].enumerated() {
                let sequence = esn ? esnSequence + UInt64(n) : UInt64(n + 1)
                let payload = espPayload(dataLength: dataLength, alignment: tx.padAlignment, seed: UInt8(n))
                var esp = espBuffer(spi: spi, sequence: sequence, transform: tx, payload: payload)
                #expect(tx.seal(&esp, sequence: sequence, esn: esn))
                if alg.cipher != .null && alg.cipher != .aesGMAC {
                    #expect(tx.payload(of: esp) != payload, "\(alg) left the payload in clear")
                }
                let verdict = rx.open(&esp, sequenceHigh: UInt32(sequence >> 32), esn: esn)
                #expect(verdict == .ok, "\(alg) \(bits) bits, \(dataLength) bytes")
                #expect(rx.payload(of: esp) == payload)
            }
        }
    }

    @Test(arguments: IntegrityAlgorithm.table, [false, true])
    func everyIntegrityAlgorithmAuthenticatesAESCBC(_ auth: IntegrityAlgorithm, _ esn: Bool) throws {
        guard auth.digest != .ripemd160 || (try? Authenticator(algorithm: auth, key: material(20, seed: 0))) != nil else { return }
        let tx = try transform(.defaultESP, auth: auth)
        let rx = try transform(.defaultESP, auth: auth)
        #expect(tx.icvLength == auth.icvLength)
        let payload = espPayload(dataLength: 100, alignment: tx.padAlignment)
        var esp = espBuffer(spi: spi, sequence: esnSequence, transform: tx, payload: payload)
        #expect(tx.seal(&esp, sequence: esnSequence, esn: esn))
        var tampered = esp
        tampered[tampered.count - 1] ^= 0x80
        #expect(rx.open(&tampered, sequenceHigh: 2, esn: esn) == .authenticationFailed)
        #expect(rx.open(&esp, sequenceHigh: 2, esn: esn) == .ok)
        #expect(rx.payload(of: esp) == payload)
    }
}

@Suite struct ESPTampering {
    /// A sealed ESN packet (sequence high word 2) and a fresh receiver.
    private func sealed(_ alg: EncryptionAlgorithm, esn: Bool = true) throws -> ([UInt8], ESPTransform, [UInt8]) {
        let tx = try transform(alg)
        let payload = espPayload(dataLength: 40, alignment: tx.padAlignment)
        var esp = espBuffer(spi: spi, sequence: esnSequence, transform: tx, payload: payload)
        #expect(tx.seal(&esp, sequence: esnSequence, esn: esn))
        return (esp, try transform(alg), payload)
    }

    @Test(arguments: EncryptionAlgorithm.table)
    func anyModifiedFieldFailsAuthentication(_ alg: EncryptionAlgorithm) throws {
        guard usable(alg) else { return }
        let (esp, rx, _) = try sealed(alg)
        let ivAt = 8, payloadAt = 8 + rx.ivLength, icvAt = esp.count - rx.icvLength
        var fields: [(String, Int)] = [("SPI", 1), ("sequence", 7), ("payload", payloadAt + 3),
                                       ("last payload byte", icvAt - 1), ("ICV", icvAt), ("last ICV byte", esp.count - 1)]
        if rx.ivLength > 0 { fields.append(("IV", ivAt + 2)) }
        for (field, at) in fields {
            var bad = esp
            bad[at] ^= 0x01
            #expect(rx.open(&bad, sequenceHigh: 2, esn: true) == .authenticationFailed, "\(alg): \(field)")
        }
        var wrongHigh = esp
        #expect(rx.open(&wrongHigh, sequenceHigh: 3, esn: true) == .authenticationFailed, "\(alg): ESN high word")
        var asNonESN = esp
        #expect(rx.open(&asNonESN, sequenceHigh: 2, esn: false) == .authenticationFailed, "\(alg): ESN off")
        var good = esp
        #expect(rx.open(&good, sequenceHigh: 2, esn: true) == .ok, "\(alg): untouched after failures")
    }

    @Test func withoutESNTheHighWordIsNotAuthenticated() throws {
        let (esp, rx, payload) = try sealed(.defaultESP, esn: false)
        var copy = esp
        #expect(rx.open(&copy, sequenceHigh: 0xdead_beef, esn: false) == .ok)
        #expect(rx.payload(of: copy) == payload)
    }
}

@Suite struct ESPLengths {
    @Test(arguments: EncryptionAlgorithm.table)
    func tooShortBuffersAreBadLength(_ alg: EncryptionAlgorithm) throws {
        guard usable(alg) else { return }
        let t = try transform(alg)
        let minimum = 8 + t.ivLength + 2 + t.icvLength       // pad length + next header
        for count in [0, 4, 8, minimum - 1] where count >= 0 {
            var b = [UInt8](repeating: 0x55, count: count)
            #expect(t.open(&b, sequenceHigh: 0, esn: false) == .badLength, "\(alg) \(count) bytes")
            #expect(!t.seal(&b, sequence: 1, esn: false))
        }
    }

    @Test(arguments: EncryptionAlgorithm.table.filter { $0.cipher.blockSize > 1 })
    func ciphertextOffTheBlockSizeIsBadLength(_ alg: EncryptionAlgorithm) throws {
        guard usable(alg) else { return }
        let t = try transform(alg)
        var b = espBuffer(spi: spi, sequence: 1, transform: t, payload: [UInt8](repeating: 1, count: t.blockSize + 1))
        #expect(t.open(&b, sequenceHigh: 0, esn: false) == .badLength)
        #expect(!t.seal(&b, sequence: 1, esn: false))
    }
}

@Suite struct ESPKeyChecks {
    /// The CryptoError `body` throws, nil if it succeeds (any other error fails the test).
    private func error(_ body: () throws -> Void) -> CryptoError? {
        do { try body(); return nil } catch let e as CryptoError { return e } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func wrongCipherKeySizesAreRefusedWithTheAllowedSizes() {
        let aes = EncryptionAlgorithm.named("aes")!
        let e1 = error { _ = try ESPTransform(encryption: aes, encryptionKey: material(12, seed: 0),
                                              integrity: .defaultAuth, integrityKey: material(32, seed: 0)) }
        #expect(e1?.kind == .keySize)
        #expect(e1?.description.contains("128 to 256 bits") == true)
        // GCM's key material must carry the 4-byte salt: a bare AES-128 key is short.
        let gcm = EncryptionAlgorithm.named("aes-128-gcm")!
        let e2 = error { _ = try ESPTransform(encryption: gcm, encryptionKey: material(16, seed: 0), integrity: nil, integrityKey: nil) }
        #expect(e2?.kind == .keySize)
        #expect(e2?.description.contains("160 bits") == true)
        #expect(e2?.description.contains("salt") == true)
        let chacha = EncryptionAlgorithm.named("chacha20-poly1305")!
        #expect(error { _ = try ESPTransform(encryption: chacha, encryptionKey: material(32, seed: 0), integrity: nil, integrityKey: nil) }?.kind == .keySize)
        #expect(error { _ = try ESPTransform(encryption: chacha, encryptionKey: material(36, seed: 0), integrity: nil, integrityKey: nil) } == nil)
        // aes accepts 192 but not 160 (64-bit steps).
        #expect(error { _ = try ESPTransform(encryption: aes, encryptionKey: material(20, seed: 0),
                                             integrity: .defaultAuth, integrityKey: material(32, seed: 0)) }?.kind == .keySize)
        #expect(error { _ = try ESPTransform(encryption: aes, encryptionKey: nil,
                                             integrity: .defaultAuth, integrityKey: material(32, seed: 0)) }?.kind == .keySize)
    }

    @Test func wrongAuthKeySizeIsRefused() {
        let e = error { _ = try ESPTransform(encryption: .defaultESP, encryptionKey: material(16, seed: 0),
                                             integrity: .defaultAuth, integrityKey: material(20, seed: 0)) }
        #expect(e?.kind == .keySize)
        #expect(e?.description.contains("hmac-sha2-256") == true)
        #expect(error { _ = try ESPTransform(encryption: .defaultESP, encryptionKey: material(16, seed: 0),
                                             integrity: .defaultAuth, integrityKey: nil) }?.kind == .keySize)
    }

    @Test func combinedCipherRefusesAnAuthAlgorithm() {
        let gcm = EncryptionAlgorithm.named("aes-256-gcm")!
        let e = error { _ = try ESPTransform(encryption: gcm, encryptionKey: material(36, seed: 0),
                                             integrity: .defaultAuth, integrityKey: material(32, seed: 0)) }
        #expect(e?.kind == .combination)
        #expect(e?.description.contains("remove auth hmac-sha2-256") == true)
    }

    @Test func nullCipherNeedsAnAuthAlgorithm() {
        let null = EncryptionAlgorithm.named("null")!
        let e = error { _ = try ESPTransform(encryption: null, encryptionKey: nil, integrity: nil, integrityKey: nil) }
        #expect(e?.kind == .combination)
        #expect(error { _ = try ESPTransform(encryption: null, encryptionKey: nil,
                                             integrity: .defaultAuth, integrityKey: material(32, seed: 0)) } == nil)
        #expect(error { _ = try ESPTransform(encryption: null, encryptionKey: material(16, seed: 0),
                                             integrity: .defaultAuth, integrityKey: material(32, seed: 0)) }?.kind == .keySize)
    }

    @Test func legacyCipherWithoutLegacyProviderSaysWhatToDo() {
        for name in ["blowfish", "cast128"] {
            let e = error { try ESPTransform.requireProvider(for: .named(name)!, legacyAvailable: false) }
            #expect(e?.kind == .providerMissing)
            #expect(e?.description == "\(name) needs OpenSSL's legacy provider, which is not available: install it (ossl-modules/legacy.so) or choose another cipher")
        }
        #expect(error { try ESPTransform.requireProvider(for: .defaultESP, legacyAvailable: false) } == nil)
    }

    @Test func variableKeyCiphersAcceptTheirWholeRange() throws {
        guard CryptoProviders.isLegacyAvailable else { return }
        for (name, bits) in [("blowfish", 40), ("blowfish", 128), ("blowfish", 448), ("cast128", 40), ("cast128", 88), ("cast128", 128)] {
            let alg = EncryptionAlgorithm.named(name)!
            let tx = try transform(alg, keyBits: bits)
            let rx = try transform(alg, keyBits: bits)
            let payload = espPayload(dataLength: 20, alignment: tx.padAlignment)
            var esp = espBuffer(spi: spi, sequence: 9, transform: tx, payload: payload)
            #expect(tx.seal(&esp, sequence: 9, esn: false))
            #expect(rx.open(&esp, sequenceHigh: 0, esn: false) == .ok, "\(name) \(bits)")
            #expect(rx.payload(of: esp) == payload)
        }
    }
}

@Suite struct ESPIVs {
    @Test(arguments: ["aesctr", "aes-128-gcm", "aes-256-gmac", "chacha20-poly1305"])
    func counterModesSendTheSequenceNumberAsIV(_ name: String) throws {
        let t = try transform(.named(name)!)
        var seen = Set<[UInt8]>()
        for sequence in [UInt64(1), 2, 3, 0xffff_ffff, 0x1_0000_0000, esnSequence] {
            var esp = espBuffer(spi: spi, sequence: sequence, transform: t, payload: [0, 4])
            #expect(t.seal(&esp, sequence: sequence, esn: sequence > 0xffff_ffff))
            let iv = Array(esp[8..<16])
            #expect(iv == withUnsafeBytes(of: sequence.bigEndian, Array.init))
            seen.insert(iv)
        }
        #expect(seen.count == 6)
    }

    @Test(arguments: EncryptionAlgorithm.table.filter { $0.cipher.blockSize > 1 })
    func cbcIVsAreDistinctAndNotTheSequenceNumber(_ alg: EncryptionAlgorithm) throws {
        guard usable(alg) else { return }
        let t = try transform(alg)
        var seen = Set<[UInt8]>()
        for sequence in UInt64(1)...2000 {
            var esp = espBuffer(spi: spi, sequence: sequence, transform: t, payload: espPayload(dataLength: 0, alignment: t.padAlignment))
            #expect(t.seal(&esp, sequence: sequence, esn: false))
            let iv = Array(esp[8..<(8 + t.ivLength)])
            #expect(!iv.allSatisfy { $0 == 0 })
            seen.insert(iv)
        }
        #expect(seen.count == 2000)
        // Another transform of the same SA key draws another IV key.
        let other = try transform(alg)
        var a = espBuffer(spi: spi, sequence: 1, transform: t, payload: espPayload(dataLength: 0, alignment: t.padAlignment))
        var b = a
        #expect(t.seal(&a, sequence: 1, esn: false) && other.seal(&b, sequence: 1, esn: false))
        #expect(a[8..<(8 + t.ivLength)] != b[8..<(8 + t.ivLength)])
    }
}

@Suite struct ESPConstructions {
    // The sealed bytes against the RFCs' definitions, rebuilt with the KAT-checked
    // lower layers (Authenticator, CipherContext).

    @Test func encryptThenMACCoversSPIThroughCiphertextPlusESNHighWord() throws {
        // RFC 4303 §2.2.1/§3.3.2.1; null cipher so the ciphertext is the payload.
        let authKey = material(32, seed: 2)
        let t = try ESPTransform(encryption: .named("null")!, encryptionKey: nil, integrity: .defaultAuth, integrityKey: authKey)
        let payload = espPayload(dataLength: 13, alignment: 4)
        var esp = espBuffer(spi: spi, sequence: esnSequence, transform: t, payload: payload)
        #expect(t.seal(&esp, sequence: esnSequence, esn: true))
        let covered = Array(esp[0..<(esp.count - 16)]) + [0, 0, 0, 2]
        var expected = [UInt8](repeating: 0, count: 32)
        authKey.withUnsafeBytes { k in expected = (try? hmac(.sha256, key: Array(k), covered, length: 16)) ?? [] }
        #expect(Array(esp[(esp.count - 16)...]) == expected)
        #expect(t.payload(of: esp) == payload)
    }

    @Test(arguments: [false, true])
    func gcmUsesSaltIVNonceAndSPISequenceAAD(_ esn: Bool) throws {
        // RFC 4106 §4 (nonce = salt || IV) and §5 (AAD).
        let keyBytes = (0..<20).map { UInt8($0) }
        let t = try ESPTransform(encryption: .named("aes-128-gcm")!, encryptionKey: SecretKey(keyBytes), integrity: nil, integrityKey: nil)
        let payload = espPayload(dataLength: 21, alignment: 4)
        var esp = espBuffer(spi: spi, sequence: esnSequence, transform: t, payload: payload)
        #expect(t.seal(&esp, sequence: esnSequence, esn: esn))
        let aad = Array(esp[0..<4]) + (esn ? [0, 0, 0, 2] : []) + Array(esp[4..<8])
        let run = try runCipher("AES-128-GCM", key: Array(keyBytes[0..<16]), iv: Array(keyBytes[16..<20]) + Array(esp[8..<16]),
                                aad: aad, payload, tagLength: 16)
        #expect(t.payload(of: esp) == run.output)
        #expect(Array(esp[(esp.count - 16)...]) == run.tag)
    }

    @Test(arguments: [false, true])
    func gmacAuthenticatesHeaderIVAndPayloadWithoutEncrypting(_ esn: Bool) throws {
        // RFC 4543 §3.3 and §5: AAD = SPI || seq (64-bit with ESN) || IV || payload.
        let keyBytes = (0..<20).map { UInt8($0 &* 3) }
        let t = try ESPTransform(encryption: .named("aes-128-gmac")!, encryptionKey: SecretKey(keyBytes), integrity: nil, integrityKey: nil)
        let payload = espPayload(dataLength: 33, alignment: 4)
        var esp = espBuffer(spi: spi, sequence: esnSequence, transform: t, payload: payload)
        #expect(t.seal(&esp, sequence: esnSequence, esn: esn))
        #expect(t.payload(of: esp) == payload)
        let aad = Array(esp[0..<4]) + (esn ? [0, 0, 0, 2] : []) + Array(esp[4..<(esp.count - 16)])
        let run = try runCipher("AES-128-GCM", key: Array(keyBytes[0..<16]), iv: Array(keyBytes[16..<20]) + Array(esp[8..<16]),
                                aad: aad, [], tagLength: 16)
        #expect(Array(esp[(esp.count - 16)...]) == run.tag)
    }
}

@Suite struct ESPContextReuse {
    @Test(arguments: EncryptionAlgorithm.table, [false, true])
    func reusedTransformMatchesAFreshOnePerPacket(_ alg: EncryptionAlgorithm, _ esn: Bool) throws {
        guard usable(alg) else { return }
        let ivKey = material(16, seed: 9)
        let reused = try transform(alg, cbcIVKey: ivKey)
        let receiver = try transform(alg)
        for n in 0..<24 {
            let sequence = (esn ? esnSequence : 1) + UInt64(n)
            let payload = espPayload(dataLength: (n * 29) % 150, alignment: reused.padAlignment, seed: UInt8(n))
            var a = espBuffer(spi: spi, sequence: sequence, transform: reused, payload: payload)
            var b = a
            #expect(reused.seal(&a, sequence: sequence, esn: esn))
            #expect(try transform(alg, cbcIVKey: ivKey).seal(&b, sequence: sequence, esn: esn))
            #expect(a == b, "\(alg) packet \(n)")
            #expect(receiver.open(&a, sequenceHigh: UInt32(sequence >> 32), esn: esn) == .ok)
            #expect(receiver.payload(of: a) == payload)
            // A failed packet in between must not disturb the next one.
            if n % 5 == 0 {
                var junk = b
                junk[junk.count - 1] ^= 0xff
                #expect(receiver.open(&junk, sequenceHigh: UInt32(sequence >> 32), esn: esn) == .authenticationFailed)
            }
        }
    }
}
