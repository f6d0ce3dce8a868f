// Published known-answer vectors for every ESP cipher, run through the same
// CipherContext (and, where the vector has ESP's shape, the same ESPTransform)
// that carries packets.

import Testing
@testable import Crypto

@Suite struct AESCBCVectors {
    // RFC 3602 §4, Cases #1–#4 (AES-128-CBC). Fields: key, IV, plaintext, ciphertext.
    static let cases: [(String, String, [UInt8], String)] = [
        ("06a9214036b8a15b512e03d534120006", "3dafba429d9eb430b422da802c9fac41",
         ascii("Single block msg"),
         "e353779c1079aeb82708942dbe77181a"),
        ("c286696d887c9aa0611bbb3e2025a45a", "562e17996d093d28ddb3ba695a2e6f58",
         hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
         "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1"),
        ("6c3ea0477630ce21a2ce334aa746c2cd", "c782dc4c098c66cbd9cd27d825682c81",
         ascii("This is a 48-byte message (exactly 3 AES blocks)"),
         "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5021c19216bad525c8579695d83ba2684"),
        ("56e47a38c5598974bc46903dba290349", "8ce82eefbea0da3c44699ed7db51b7d9",
         hex("a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"),
         "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55"),
    ]

    @Test(arguments: 0..<4)
    func encryptsAndDecryptsRFC3602Cases(_ i: Int) throws {
        let (k, iv, plaintext, ciphertext) = Self.cases[i]
        let enc = try runCipher("AES-128-CBC", key: hex(k), iv: hex(iv), plaintext)
        #expect(enc.output == hex(ciphertext))
        let dec = try runCipher("AES-128-CBC", key: hex(k), iv: hex(iv), hex(ciphertext), encrypt: false)
        #expect(dec.output == plaintext)
    }

    // NIST SP 800-38A F.2.3 / F.2.5 (CBC-AES192 / CBC-AES256), first block.
    @Test func encryptsSP80038AVectorsWith192And256BitKeys() throws {
        let iv = hex("000102030405060708090a0b0c0d0e0f")
        let p = hex("6bc1bee22e409f96e93d7e117393172a")
        let c192 = try runCipher("AES-192-CBC", key: hex("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b"), iv: iv, p)
        #expect(c192.output == hex("4f021db243bc633d7178183a9fa071e8"))
        let c256 = try runCipher("AES-256-CBC", key: hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"), iv: iv, p)
        #expect(c256.output == hex("f58c4c04d6e5f1ba779eabfb5f7bfbd6"))
    }
}

@Suite struct AESCTRVectors {
    // RFC 3686 §6: key, nonce, IV, plaintext, ciphertext. The RFC's counter block is
    // nonce || IV || 00000001, exactly ESP's layout, so these run through
    // ESPTransform.seal with the IV taken from the sequence number.
    static let vectors: [(String, String, String, [UInt8], String)] = [
        // Test Vector #1 (AES-128, 16 octets)
        ("ae6852f8121067cc4bf7a5765577f39e", "00000030", "0000000000000000",
         ascii("Single block msg"), "e4095d4fb7a7b3792d6175a3261311b8"),
        // Test Vector #2 (AES-128, 32 octets)
        ("7e24067817fae0d743d6ce1f32539163", "006cb6db", "c0543b59da48d90b",
         hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
         "5104a106168a72d9790d41ee8edad388eb2e1efc46da57c8fce630df9141be28"),
        // Test Vector #3 (AES-128, 36 octets: a partial last block)
        ("7691be035e5020a8ac6e618529f9a0dc", "00e0017b", "27777f3f4a1786f0",
         hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"),
         "c1cf48a89f2ffdd9cf4652e9efdb72d74540a42bde6d7836d59a5ceaaef3105325b2072f"),
        // Test Vector #4 (AES-192, 16 octets)
        ("16af5b145fc9f579c175f93e3bfb0eed863d06ccfdb78515", "00000048", "36733c147d6d93cb",
         ascii("Single block msg"), "4b55384fe259c9c84e7935a003cbe928"),
        // Test Vector #7 (AES-256, 16 octets)
        ("776beff2851db06f4c8a0542c8696f6c6a81af1eec96b4d37fc1d689e6c1c104", "00000060", "db5672c97aa8f0b2",
         ascii("Single block msg"), "145ad01dbf824ec7560863dc71e3e0c0"),
    ]

    @Test(arguments: 0..<5)
    func sealMatchesRFC3686Vector(_ i: Int) throws {
        let (k, nonce, iv, plaintext, ciphertext) = Self.vectors[i]
        let alg = EncryptionAlgorithm.named("aesctr")!
        let t = try ESPTransform(encryption: alg, encryptionKey: key(k + nonce), integrity: nil, integrityKey: nil)
        let sequence = hex(iv).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        var esp = espBuffer(spi: 0x1000, sequence: sequence, transform: t, payload: plaintext)
        #expect(t.seal(&esp, sequence: sequence, esn: false))
        #expect(Array(esp[8..<16]) == hex(iv))               // IV on the wire = sequence number
        #expect(t.payload(of: esp) == hex(ciphertext))
        #expect(t.open(&esp, sequenceHigh: 0, esn: false) == .ok)
        #expect(t.payload(of: esp) == plaintext)
    }
}

@Suite struct AESGCMVectors {
    // McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Appendix B test
    // cases 1–4 (AES-128), 7–10 (AES-192), 13–16 (AES-256). IV cafebabefacedbaddecaf888
    // is salt cafebabe || ESP IV facedbaddecaf888.
    static let k128 = "feffe9928665731c6d6a8f9467308308"
    static let p = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
    static let p60 = String(p.prefix(120))
    static let iv = "cafebabefacedbaddecaf888"
    static let aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
    // (test case, OpenSSL name, key, IV, AAD, plaintext, ciphertext, tag)
    static let cases: [(Int, String, String, String, String, String, String, String)] = [
        (1, "AES-128-GCM", String(repeating: "0", count: 32), String(repeating: "0", count: 24), "", "", "",
         "58e2fccefa7e3061367f1d57a4e7455a"),
        (2, "AES-128-GCM", String(repeating: "0", count: 32), String(repeating: "0", count: 24), "",
         String(repeating: "0", count: 32), "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"),
        (3, "AES-128-GCM", k128, iv, "", p,
         "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
         "4d5c2af327cd64a62cf35abd2ba6fab4"),
        (4, "AES-128-GCM", k128, iv, aad, p60,
         "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
         "5bc94fbc3221a5db94fae95ae7121a47"),
        (7, "AES-192-GCM", String(repeating: "0", count: 48), String(repeating: "0", count: 24), "", "", "",
         "cd33b28ac773f74ba00ed1f312572435"),
        (8, "AES-192-GCM", String(repeating: "0", count: 48), String(repeating: "0", count: 24), "",
         String(repeating: "0", count: 32), "98e7247c07f0fe411c267e4384b0f600", "2ff58d80033927ab8ef4d4587514f0fb"),
        (9, "AES-192-GCM", k128 + "feffe9928665731c", iv, "", p,
         "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256",
         "9924a7c8587336bfb118024db8674a14"),
        (10, "AES-192-GCM", k128 + "feffe9928665731c", iv, aad, p60,
         "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
         "2519498e80f1478f37ba55bd6d27618c"),
        (13, "AES-256-GCM", String(repeating: "0", count: 64), String(repeating: "0", count: 24), "", "", "",
         "530f8afbc74536b9a963b4f1c4cb738b"),
        (14, "AES-256-GCM", String(repeating: "0", count: 64), String(repeating: "0", count: 24), "",
         String(repeating: "0", count: 32), "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
        (15, "AES-256-GCM", k128 + k128, iv, "", p,
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
         "b094dac5d93471bdec1a502270e3cc6c"),
        (16, "AES-256-GCM", k128 + k128, iv, aad, p60,
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
         "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test(arguments: 0..<12)
    func encryptsAndVerifiesGCMSpecTestCase(_ i: Int) throws {
        let (_, name, k, iv, aad, p, c, t) = Self.cases[i]
        let enc = try runCipher(name, key: hex(k), iv: hex(iv), aad: hex(aad), hex(p), tagLength: 16)
        #expect(enc.finished)
        #expect(enc.output == hex(c))
        #expect(enc.tag == hex(t))
        let dec = try runCipher(name, key: hex(k), iv: hex(iv), aad: hex(aad), hex(c), encrypt: false, tag: hex(t))
        #expect(dec.finished)
        #expect(dec.output == hex(p))
        var bad = hex(t); bad[0] ^= 1
        let forged = try runCipher(name, key: hex(k), iv: hex(iv), aad: hex(aad), hex(c), encrypt: false, tag: bad)
        #expect(!forged.finished)
    }

    // GMAC is GCM with everything as AAD and no plaintext. NIST CAVP
    // gcmEncryptExtIV128.rsp, [Keylen = 128] [IVlen = 96] [PTlen = 0] [AADlen = 128]
    // [Taglen = 128], Count = 0.
    @Test func gmacTagMatchesCAVPAuthenticationOnlyVector() throws {
        let run = try runCipher("AES-128-GCM", key: hex("77be63708971c4e240d1cb79e8d77feb"),
                                iv: hex("e0e00f19fed7ba0136a797f3"),
                                aad: hex("7a43ec1d9c0a5a78a0b16533a6213cab"), [], tagLength: 16)
        #expect(run.finished)
        #expect(run.tag == hex("209fcc8d3675ed938e9c7166709dd946"))
    }
}

@Suite struct ChaCha20Poly1305Vectors {
    // RFC 8439 §2.8.2. Its 12-byte AAD 50515253 c0c1c2c3 c4c5c6c7 has exactly the
    // shape of ESP's ESN AAD (SPI || seq high || seq low, RFC 7634 §2.1), and its
    // nonce 07000000 || 4041424344454647 is salt || ESP IV, so the vector is an ESP
    // packet with SPI 0x50515253 and sequence number 0xc0c1c2c3_c4c5c6c7.
    static let keyHex = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    static let plaintext = ascii("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
    static let ciphertext = hex("""
        d31a8d34648e60db7b86afbc53ef7ec2 a4aded51296e08fea9e2b5a736ee62d6
        3dbea45e8ca9671282fafb69da92728b 1a71de0a9e060b2905d6a5b67ecd3b36
        92ddbd7f2d778b8c9803aee328091b58 fab324e4fad675945585808b4831d7bc
        3ff4def08e4b7a9de576d26586cec64b 6116
        """)
    static let tag = hex("1ae10b594f09e26a7e902ecbd0600691")

    @Test func encryptsRFC8439AEADVector() throws {
        let run = try runCipher("ChaCha20-Poly1305", key: hex(Self.keyHex), iv: hex("070000004041424344454647"),
                                aad: hex("50515253c0c1c2c3c4c5c6c7"), Self.plaintext, tagLength: 16)
        #expect(run.finished)
        #expect(run.output == Self.ciphertext)
        #expect(run.tag == Self.tag)
    }

    @Test func opensRFC8439VectorAsAnESNPacket() throws {
        let alg = EncryptionAlgorithm.named("chacha20-poly1305")!
        let t = try ESPTransform(encryption: alg, encryptionKey: key(Self.keyHex + "07000000"), integrity: nil, integrityKey: nil)
        // SPI || seq low || IV || ciphertext || ICV
        let packet = hex("50515253 c4c5c6c7 4041424344454647") + Self.ciphertext + Self.tag
        var esp = packet
        #expect(t.open(&esp, sequenceHigh: 0xc0c1_c2c3, esn: true) == .ok)
        #expect(t.payload(of: esp) == Self.plaintext)
        // Without ESN the AAD is only SPI || seq low: the tag no longer matches.
        esp = packet
        #expect(t.open(&esp, sequenceHigh: 0xc0c1_c2c3, esn: false) == .authenticationFailed)
    }
}

@Suite struct LegacyBlockCipherVectors {
    // NIST SP 800-67 Rev. 1, Appendix B example (TDEA ECB, three distinct keys).
    @Test func tripleDESMatchesSP80067Example() throws {
        let k = hex("0123456789abcdef 23456789abcdef01 456789abcdef0123")
        let c = try ecbThroughCBC("DES-EDE3-CBC", key: k, ascii("The qufck brown fox jump"))
        #expect(c == hex("a826fd8ce53b855f cce21c8112256fe6 68d5c05dd9b6b900"))
    }

    // Eric Young's Blowfish test data (Schneier's reference vectors): ECB with
    // 64-bit keys, and variable-length keys F0, F0E1, … on FEDCBA9876543210.
    @Test(.enabled(if: CryptoProviders.isLegacyAvailable))
    func blowfishMatchesEricYoungVectors() throws {
        #expect(try ecbThroughCBC("BF-CBC", key: hex("0000000000000000"), hex("0000000000000000")) == hex("4ef997456198dd78"))
        #expect(try ecbThroughCBC("BF-CBC", key: hex("ffffffffffffffff"), hex("ffffffffffffffff")) == hex("51866fd5b85ecb8a"))
        #expect(try ecbThroughCBC("BF-CBC", key: hex("3000000000000000"), hex("1000000000000001")) == hex("7d856f9a613063f2"))
        let data = hex("fedcba9876543210")
        let full = "f0e1d2c3b4a5968778695a4b3c2d1e0f0011223344556677"
        for (bytes, expected) in [(5, "b39e44481bdb1e6e"), (8, "e87a244e2cc85e82"),
                                  (16, "93142887ee3be15c"), (24, "05044b62fa52d080")] {
            let k = hex(String(full.prefix(bytes * 2)))
            #expect(try ecbThroughCBC("BF-CBC", key: k, data) == hex(expected), "key of \(bytes) bytes")
        }
    }

    // Eric Young's Blowfish CBC vector: key 0123456789ABCDEFF0E1D2C3B4A59687,
    // IV FEDCBA9876543210, "7654321 Now is the time for " plus 4 zero bytes.
    @Test(.enabled(if: CryptoProviders.isLegacyAvailable))
    func blowfishCBCMatchesEricYoungVector() throws {
        let run = try runCipher("BF-CBC", key: hex("0123456789abcdeff0e1d2c3b4a59687"), iv: hex("fedcba9876543210"),
                                ascii("7654321 Now is the time for ") + [0, 0, 0, 0])
        #expect(run.output == hex("6b77b4d63006dee605b156e27403979358deb9e7154616d959f1652bd5ff92cc"))
    }

    // RFC 2144 Appendix B.1: one block with 128-, 80- and 40-bit keys (the shorter
    // keys run CAST-128's 12-round variant).
    @Test(.enabled(if: CryptoProviders.isLegacyAvailable))
    func cast128MatchesRFC2144SingleBlockVectors() throws {
        let p = hex("0123456789abcdef")
        #expect(try ecbThroughCBC("CAST5-CBC", key: hex("0123456712345678234567893456789a"), p) == hex("238b4fe5847e44b2"))
        #expect(try ecbThroughCBC("CAST5-CBC", key: hex("01234567123456782345"), p) == hex("eb6a711a2c02271b"))
        #expect(try ecbThroughCBC("CAST5-CBC", key: hex("0123456712"), p) == hex("7ac816d16e9b302e"))
    }
}
