// IKEv2 key derivation and SK payloads against published vectors and against what
// strongSwan 5.9.8 derived for the recorded exchange (Fixtures/charon-5.9.8): from
// the logged Diffie-Hellman secret and the nonces and SPIs in the messages, SKEYSEED
// and every SK_* must come out as charon logged them; with SK_ei and SK_er the
// IKE_AUTH messages must open, and the PSK AUTH computed here must equal the AUTH
// payload charon sent.

import Crypto
import EncCore
import Foundation
import IPsec
import Testing
@testable import IKE
@testable import IKECrypto

/// The hex dumps charon logged at `ike 4`, by the text before "=>" (in order; a name
/// logged twice, as AUTH for both directions, gives both).
enum CharonLog {
    static func values(in dir: String = Fixture.main) throws -> [(String, [UInt8])] {
        let url = try #require(Bundle.module.url(forResource: "initiator-ike4", withExtension: "log", subdirectory: dir))
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        var out: [(String, [UInt8])] = []
        for line in lines {
            if let arrow = line.range(of: " => ") {
                out.append((String(line[..<arrow.lowerBound]), []))
            } else if let colon = line.firstIndex(of: ":"), line.hasPrefix(" "), !out.isEmpty {
                // "  16: 7D C7 ... 1A  }..]..." : 16 bytes of hex, then the text column.
                let hexPart = line[line.index(after: colon)...].prefix(49)
                out[out.count - 1].1 += hexPart.split(separator: " ").compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
            }
        }
        return out
    }
    static func value(_ name: String, _ n: Int = 0, in dir: String = Fixture.main) throws -> [UInt8] {
        try #require(try values(in: dir).filter { $0.0 == name }.dropFirst(n).first?.1)
    }
}

@Suite struct KeyDerivationTests {
    /// RFC 4231 test case 2 for each PRF.
    @Test func prfsMatchRFC4231() {
        let key = Array("Jefe".utf8), data = Array("what do ya want for nothing?".utf8)
        #expect(IKEPRF.hmacSHA256(key, data) == hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
        #expect(IKEPRF.hmacSHA384(key, data) == hex("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"))
        #expect(IKEPRF.hmacSHA512(key, data) == hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"))
    }

    /// prf+ (§2.13), against Python's hmac module computing the same chain.
    @Test func prfPlusChainsBlocks() {
        let out = IKEPRF.hmacSHA256.plus([UInt8](repeating: 0x0b, count: 32), Array("encd prf+ seed".utf8), count: 100)
        #expect(out == hex("a5a4ba450d4e991b8ee39fdae164e560081c0c041c0f6297af9b7664dffb99d4c39933d51e3e705428daa00a6ceadebc1de2b2c69e1c65665e0e848317a408fa793d65ed601f18062a2a009e87f38f94250b4585ff4d059c9f2f1975ccc8be0a01450c80"))
        #expect(IKEPRF.hmacSHA256.plus([1], [2], count: 255 * 32 + 1) == nil)
    }

    /// A recorded IKE_SA_INIT (of `dir`) and the IKE SA's keys.
    struct Exchange {
        let dir: String
        let request: [UInt8], response: [UInt8], ni: [UInt8], nr: [UInt8], spii: UInt64, spir: UInt64
        init(_ dir: String = Fixture.main) throws {
            self.dir = dir
            request = try Fixture.bytes("ike_sa_init_request", in: dir)
            response = try Fixture.bytes("ike_sa_init_response", in: dir)
            let q = try IKEMessage.decode(request).get(), r = try IKEMessage.decode(response).get()
            func nonce(_ m: IKEMessage) -> [UInt8]? { m.payloads.lazy.compactMap { if case .nonce(let n) = $0.body { return n }; return nil }.first }
            ni = try #require(nonce(q))
            nr = try #require(nonce(r))
            spii = r.header.initiatorSPI
            spir = r.header.responderSPI
        }
        /// PRF HMAC-SHA2-256; by default AES-256-GCM (a 32-byte key and a 4-byte salt).
        func keys(encryptionLength: Int = 36, integrityLength: Int = 0) throws -> IKESAKeys {
            let secret = try CharonLog.value("shared Diffie Hellman secret", in: dir)
            return try #require(IKESAKeys(prf: .hmacSHA256, sharedSecret: secret, ni: ni, nr: nr, spii: spii, spir: spir,
                                          encryptionLength: encryptionLength, integrityLength: integrityLength))
        }

        /// The inner payloads of the recorded message `name`, opened with `key`.
        func opened(_ name: String, _ key: SecretKey) throws -> [IKEPayload] {
            let m = try Fixture.bytes(name, in: dir)
            guard case .encrypted(let first, _) = try IKEMessage.decode(m).get().payloads[0].body else { throw IKEDecodeError.malformed("no SK in \(name)") }
            return try IKEPayloads.decode(try IKEAEAD.open(message: m, bodyOffset: 32, key: key).get(), first: first).get()
        }
    }

    @Test func keysMatchWhatCharonDerived() throws {
        let x = try Exchange()
        let secret = try CharonLog.value("shared Diffie Hellman secret")
        #expect(IKESAKeys.skeyseed(prf: .hmacSHA256, sharedSecret: secret, ni: x.ni, nr: x.nr) == (try CharonLog.value("SKEYSEED")))
        let k = try x.keys()
        for (key, name) in [(k.d, "Sk_d secret"), (k.ei, "Sk_ei secret"), (k.er, "Sk_er secret"), (k.pi, "Sk_pi secret"), (k.pr, "Sk_pr secret")] {
            #expect(key.withUnsafeBytes { Array($0) } == (try CharonLog.value(name)), "\(name)")
        }
        #expect(k.ai.withUnsafeBytes { $0.count } == 0)
    }

    /// IKE_AUTH opened with SK_ei / SK_er (RFC 5282), its payloads parsed, and the PSK
    /// AUTH computed here equal to charon's, in both directions.
    @Test func ikeAuthOpensAndItsPSKAuthVerifies() throws {
        let x = try Exchange()
        let k = try x.keys()
        let psk = SecretKey(Array("encd-ike-fixture-psk-0123456789".utf8))
        for (name, key, first, peerNonce, skP, n) in [("ike_auth_request", k.ei, x.request, x.nr, k.pi, 0),
                                                      ("ike_auth_response", k.er, x.response, x.ni, k.pr, 1)] {
            let m = try Fixture.bytes(name)
            let msg = try IKEMessage.decode(m).get()
            guard case .encrypted(let inner, _) = msg.payloads[0].body else { Issue.record("no SK in \(name)"); continue }
            let plain = try IKEAEAD.open(message: m, bodyOffset: IKEHeader.size + 4, key: key).get()
            let payloads = try IKEPayloads.decode(plain, first: inner).get()
            guard case .identification(let idType, let id) = payloads[0].body,
                  let auth = payloads.lazy.compactMap({ p -> [UInt8]? in if case .authentication(2, let a) = p.body { return a }; return nil }).first
            else { Issue.record("\(name): no ID or shared-key AUTH: \(payloads.map(\.type))"); continue }
            #expect(String(decoding: id, as: UTF8.self) == (n == 0 ? "gw1" : "gw2"))
            #expect(auth == (try CharonLog.value("AUTH = prf(prf(secret, keypad), octets)", n)))
            let octets = IKEPSKAuth.octets(firstMessage: first, peerNonce: peerNonce, prf: .hmacSHA256, skP: skP,
                                           idBody: [idType, 0, 0, 0] + id)
            #expect(octets == (try CharonLog.value("octets = message + nonce + prf(Sk_px, IDx')", n)))
            #expect(IKEPSKAuth.auth(prf: .hmacSHA256, secret: psk, octets: octets) == auth)
            if n == 0 {
                // The request proposes the CHILD SA: SA, TSi, TSr as configured.
                #expect(payloads.contains { if case .trafficSelectors(let t) = $0.body { return t.first?.startAddress == [198, 18, 1, 0] }; return false })
            }
        }
    }

    /// Sealing: charon's IKE_AUTH messages rebuilt from their opened payloads, with the
    /// same IV and padding, come out byte for byte as charon sent them.
    @Test func sealingRebuildsCharonsMessages() throws {
        let x = try Exchange()
        let k = try x.keys()
        for (name, key) in [("ike_auth_request", k.ei), ("ike_auth_response", k.er)] {
            let m = try Fixture.bytes(name)
            let msg = try IKEMessage.decode(m).get()
            guard case .encrypted(let first, _) = msg.payloads[0].body else { Issue.record("no SK"); continue }
            let inner = try IKEPayloads.decode(try IKEAEAD.open(message: m, bodyOffset: 32, key: key).get(), first: first).get()
            var w = IKEWriter()
            IKEPayloads.encode(inner, into: &w)
            let padding = try #require(IKEAEAD.padding(message: m, bodyOffset: 32, key: key))
            let rebuilt = try IKEAEAD.seal(header: Array(m.prefix(28)), firstInner: first, inner: w.bytes, padding: padding,
                                             iv: Array(m[32..<40]), key: key).get()
            #expect(rebuilt == m, "\(name) rebuilt")
        }
        // A message sealed here opens again, with padding removed.
        let sealed = try IKEAEAD.seal(header: Array(x.request.prefix(28)), firstInner: IKEPayloadType.notify,
                                        inner: [0, 0, 0, 8, 0, 0, 0x40, 0], padding: [0, 0, 0], iv: [1, 2, 3, 4, 5, 6, 7, 8], key: k.ei).get()
        #expect(try IKEAEAD.open(message: sealed, bodyOffset: 32, key: k.ei).get() == [0, 0, 0, 8, 0, 0, 0x40, 0])
        #expect(try IKEMessage.decode(sealed).get().payloads.count == 1)
    }

    /// ChaCha20-Poly1305 for SK (RFC 7634 §3: nonce = salt | IV), against Python's
    /// cryptography package sealing the same header, payload and IV.
    @Test func chachaSealsAsPythonDoes() throws {
        let key = SecretKey(Array(0..<32) + [0xa0, 0xa1, 0xa2, 0xa3])
        let header = Array(try Fixture.bytes("ike_auth_request").prefix(28))
        let sealed = try IKEAEAD.seal(header: header, firstInner: IKEPayloadType.notify, inner: [0, 0, 0, 8, 0, 0, 0x40, 0],
                                      iv: [1, 2, 3, 4, 5, 6, 7, 8], key: key, cipher: .chacha20Poly1305).get()
        #expect(sealed == hex("565ea6f5201cc8ca0a6be1b468c943182e2023080000000100000041290000250102030405060708a923478b49bc6f97a695558fb72601774224c57d5b94c0dbab"))
        #expect(try IKEAEAD.open(message: sealed, bodyOffset: 32, key: key, cipher: .chacha20Poly1305).get() == [0, 0, 0, 8, 0, 0, 0x40, 0])
        #expect(IKEAEAD.open(message: sealed, bodyOffset: 32, key: key, cipher: .aesGCM) != .success([0, 0, 0, 8, 0, 0, 0x40, 0]))
    }

    /// §2.23's NAT-D hashes against charon's IKE_SA_INIT request (192.0.2.1:500 to
    /// 192.0.2.2:500): the destination hash is what charon sent; the source hash is
    /// not, because charon with kernel-libipsec 5.9.8 fakes it on purpose (ESP only in
    /// UDP: every peer is made to see a NAT), so it must not match the real address.
    @Test func natDetectionHashes() throws {
        let msg = try IKEMessage.decode(try Fixture.bytes("ike_sa_init_request")).get()
        func notify(_ type: UInt16) -> [UInt8]? {
            msg.payloads.lazy.compactMap { if case .notify(_, type, _, let d) = $0.body { return d }; return nil }.first
        }
        let spii = msg.header.initiatorSPI
        #expect(IKENATDetection.hash(spii: spii, spir: 0, address: [192, 0, 2, 2], port: 500) == notify(16389))
        #expect(IKENATDetection.hash(spii: spii, spir: 0, address: [192, 0, 2, 1], port: 500) != notify(16388))
        #expect(notify(16388)?.count == 20)
    }

    @Test func aChangedByteFailsTheICV() throws {
        let x = try Exchange()
        var m = try Fixture.bytes("ike_auth_request")
        m[m.count - 20] ^= 1
        #expect(IKEAEAD.open(message: m, bodyOffset: 32, key: try x.keys().ei) == .failure(.authenticationFailed))
        // The header is authenticated too (AAD).
        var h = try Fixture.bytes("ike_auth_request")
        h[23] ^= 1
        #expect(IKEAEAD.open(message: h, bodyOffset: 32, key: try x.keys().ei) == .failure(.authenticationFailed))
        #expect(IKEAEAD.open(message: Array(m.prefix(40)), bodyOffset: 32, key: try x.keys().ei) != .failure(.authenticationFailed))
    }
}

/// The CHILD SA of a second recording (Fixtures/charon-5.9.8-child: the sites'
/// addresses present, so charon installed the CHILD SA and logged its keys at chd 4):
/// from the logged Diffie-Hellman secret, SK_d and then the ESP keys (AES-GCM-16-128:
/// 16-byte key and 4-byte salt each way) come out as charon derived them, the ESP SPIs
/// are the ones in the opened IKE_AUTH messages, and with those keys and SPIs encd's
/// ESP input opens the ping that crossed the CHILD SA in both directions.
@Suite struct ChildKeyTests {
    @Test func espKeysMatchWhatCharonDerived() throws {
        let x = try KeyDerivationTests.Exchange(Fixture.child)
        let ike = try x.keys()
        #expect(ike.d.withUnsafeBytes { Array($0) } == (try CharonLog.value("Sk_d secret", in: Fixture.child)))
        let child = try #require(IKEChildKeys(prf: .hmacSHA256, skD: ike.d, ni: x.ni, nr: x.nr, encryptionLength: 20, integrityLength: 0))
        #expect(child.encryptionIR.withUnsafeBytes { Array($0) } == (try CharonLog.value("encryption initiator key", in: Fixture.child)))
        #expect(child.encryptionRI.withUnsafeBytes { Array($0) } == (try CharonLog.value("encryption responder key", in: Fixture.child)))
        #expect(child.integrityIR.withUnsafeBytes { $0.count } == 0)
        // Each side's ESP SPI, from the SA payloads inside IKE_AUTH: the initiator's is
        // what the responder sends to, and the other way round.
        var spis: [UInt32] = []
        for (name, key) in [("ike_auth_request", ike.ei), ("ike_auth_response", ike.er)] {
            let inner = try x.opened(name, key)
            let esp = try #require(inner.lazy.compactMap { p -> IKEProposal? in if case .sa(let ps) = p.body { return ps.first }; return nil }.first)
            #expect(esp.protocolID == 3 && esp.spi.count == 4, "\(name): an ESP proposal with a 4-byte SPI")
            #expect(esp.transforms.first.map { [$0.type, UInt8($0.id)] } == [1, 20])
            spis.append(esp.spi.reduce(0) { $0 << 8 | UInt32($1) })
        }
        // encd's own ESP input opens the ping charon's kernel-libipsec sent through the
        // CHILD SA (ESP in UDP 4500) with these keys, and the echo reply coming back.
        let gcm = try #require(EncryptionAlgorithm.named("aes-128-gcm"))
        for (name, key, spi, to, inner) in [("esp_request", child.encryptionIR, spis[1], "192.0.2.2", [UInt8]([198, 18, 1, 1, 198, 18, 2, 1])),
                                            ("esp_reply", child.encryptionRI, spis[0], "192.0.2.1", [UInt8]([198, 18, 2, 1, 198, 18, 1, 1]))] {
            let spec = SASpec(proto: .esp, mode: .tunnel, source: IPAddress(to == "192.0.2.2" ? "192.0.2.1" : "192.0.2.2")!,
                              destination: IPAddress(to)!, spi: spi, encapsulation: UDPEncapsulation(port: 4500),
                              encryption: gcm, encryptionKey: key, replayWindow: 64)
            let sa = try SecurityAssociation(spec, direction: .inbound, store: nil, now: 0)
            let buffer = PacketBuffer()
            buffer.load(try Fixture.bytes(name, in: Fixture.child))
            let result = ESPInput.process(buffer, sad: SAD([sa]), now: 0, stats: CounterBlock<Counter>())
            guard case .decapsulated = result else { Issue.record("\(name): \(result)"); continue }
            let p = buffer.array
            #expect(p.count == 84 && p[9] == 1 && Array(p[12..<20]) == inner, "\(name): the inner ICMP echo between the sites")
        }
    }
}

/// AES-CBC-256 with HMAC-SHA2-256-128 (a third recording, Fixtures/charon-5.9.8-cbc,
/// proposal aes256-sha256-x25519): SK_a* and SK_e* as charon derived them, both
/// IKE_AUTH messages verified and opened, and sealed again (same IV and padding) to
/// charon's bytes; a changed byte fails the ICV.
@Suite struct CBCTests {
    @Test func cbcHMACMatchesCharon() throws {
        let x = try KeyDerivationTests.Exchange(Fixture.cbc)
        let k = try x.keys(encryptionLength: 32, integrityLength: 32)
        for (key, name) in [(k.ai, "Sk_ai secret"), (k.ar, "Sk_ar secret"), (k.ei, "Sk_ei secret"), (k.er, "Sk_er secret")] {
            #expect(key.withUnsafeBytes { Array($0) } == (try CharonLog.value(name, in: Fixture.cbc)), "\(name)")
        }
        for (name, e, a, n) in [("ike_auth_request", k.ei, k.ai, 0), ("ike_auth_response", k.er, k.ar, 1)] {
            let m = try Fixture.bytes(name, in: Fixture.cbc)
            guard case .encrypted(let first, _) = try IKEMessage.decode(m).get().payloads[0].body else { Issue.record("no SK"); continue }
            let plain = try IKECBC.open(message: m, bodyOffset: 32, encryptionKey: e, integrityKey: a, integrity: .hmacSHA256_128).get()
            let inner = try IKEPayloads.decode(plain, first: first).get()
            let auth = inner.lazy.compactMap { p -> [UInt8]? in if case .authentication(2, let d) = p.body { return d }; return nil }.first
            #expect(auth == (try CharonLog.value("AUTH = prf(prf(secret, keypad), octets)", n, in: Fixture.cbc)))
            // The padding charon chose, from the whole decrypted block run.
            let iv = Array(m[32..<48]), body = Array(m[48..<(m.count - 16)])
            let whole = try #require(e.withUnsafeBytes { IKECBC.cbc(decrypt: true, key: Array($0), iv: iv, input: body) })
            let padding = Array(whole[plain.count..<(whole.count - 1)])
            let again = try IKECBC.seal(header: Array(m.prefix(28)), firstInner: first, inner: plain, padding: padding, iv: iv,
                                        encryptionKey: e, integrityKey: a, integrity: .hmacSHA256_128).get()
            #expect(again == m, "\(name) sealed again")
            var bad = m
            bad[40] ^= 1
            #expect(IKECBC.open(message: bad, bodyOffset: 32, encryptionKey: e, integrityKey: a, integrity: .hmacSHA256_128) == .failure(.authenticationFailed))
        }
        // Sealed here with zero padding, opened again.
        let sealed = try IKECBC.seal(header: Array(x.request.prefix(28)), firstInner: 41, inner: [0, 0, 0, 8, 0, 0, 0x40, 0],
                                     iv: [UInt8](repeating: 9, count: 16), encryptionKey: k.ei, integrityKey: k.ai, integrity: .hmacSHA256_128).get()
        #expect(try IKECBC.open(message: sealed, bodyOffset: 32, encryptionKey: k.ei, integrityKey: k.ai, integrity: .hmacSHA256_128).get()
                == [0, 0, 0, 8, 0, 0, 0x40, 0])
    }
}
