// The IKEv2 codec against messages strongSwan 5.9.8's charon exchanged in two network
// namespaces (Fixtures/record-charon.sh: PSK, aes256gcm16-prfsha256-x25519), read
// field by field as tshark 4.0 reads the same capture, and re-encoded byte for byte;
// then hostile bytes: every truncation, every single-byte change and random lengths
// decode to a value or an error, never a trap.

import Foundation
import Testing
@testable import IKE

enum Fixture {
    /// The first recording, and the one whose CHILD SA came up (README.md there).
    static let main = "Fixtures/charon-5.9.8", child = "Fixtures/charon-5.9.8-child", cbc = "Fixtures/charon-5.9.8-cbc"

    static func bytes(_ name: String, in dir: String = main) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "bin", subdirectory: dir))
        return [UInt8](try Data(contentsOf: url))
    }
    static let messages = ["ike_sa_init_request", "ike_sa_init_response", "ike_auth_request", "ike_auth_response",
                           "informational_request", "informational_response"]
}

func hex(_ s: String) -> [UInt8] {   // upper or lower case
    var out: [UInt8] = []
    var it = s.makeIterator()
    while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

@Suite struct MessageTests {
    @Test func charonsIKESAInitRequestReadsAsTsharkReadsIt() throws {
        let m = try Fixture.bytes("ike_sa_init_request")
        let msg = try IKEMessage.decode(m).get()
        #expect(msg.header.initiatorSPI == 0x565e_a6f5_201c_c8ca && msg.header.responderSPI == 0)
        #expect(msg.header.exchange == IKEExchangeType.ikeSAInit && msg.header.messageID == 0)
        #expect(msg.header.isInitiator && !msg.header.isResponse)
        #expect(msg.payloads.map(\.type) == [33, 34, 40, 41, 41, 41, 41, 41])
        guard case .sa(let proposals) = msg.payloads[0].body else { Issue.record("no SA"); return }
        #expect(proposals.count == 1 && proposals[0].protocolID == 1 && proposals[0].spi.isEmpty)
        #expect(proposals[0].transforms.map { [$0.type, UInt8($0.id)] } == [[1, 20], [2, 5], [4, 31]])
        #expect(proposals[0].transforms[0].attributes.first?.keyLengthBits == 256)
        #expect(msg.payloads[1].body == .keyExchange(group: 31, data: hex("3c2b638fb1d492d61727cdb5df4546d3e4d4143b203ee6e896bfaa92c9981a14")))
        #expect(msg.payloads[2].body == .nonce(hex("e8b363d5ead29c35bfc355924cd012fe220c75d0461b89e5336516862b08dc92")))
        let notifies = msg.payloads.compactMap { p -> UInt16? in if case .notify(_, let t, _, _) = p.body { return t }; return nil }
        #expect(notifies == [16388, 16389, 16430, 16431, 16406])
        if case .notify(_, _, _, let hash) = msg.payloads[3].body { #expect(hash.count == 20) }   // SHA-1 NAT-D hash
        #expect(msg.encode() == m)
    }

    @Test func charonsIKESAInitResponse() throws {
        let m = try Fixture.bytes("ike_sa_init_response")
        let msg = try IKEMessage.decode(m).get()
        #expect(msg.header.responderSPI == 0x0a6b_e1b4_68c9_4318 && msg.header.isResponse && !msg.header.isInitiator)
        let notifies = msg.payloads.compactMap { p -> UInt16? in if case .notify(_, let t, _, _) = p.body { return t }; return nil }
        #expect(notifies == [16388, 16389, 16430, 16431, 16418, 16404])
        #expect(msg.encode() == m)
    }

    /// IKE_AUTH and INFORMATIONAL: the header and the SK payload, kept encrypted, naming
    /// the first payload inside.
    @Test func encryptedMessagesKeepTheirSKPayload() throws {
        let auth = try IKEMessage.decode(try Fixture.bytes("ike_auth_request")).get()
        #expect(auth.header.exchange == IKEExchangeType.ikeAuth && auth.header.messageID == 1)
        #expect(auth.payloads.count == 1)
        guard case .encrypted(let first, let data) = auth.payloads[0].body else { Issue.record("no SK"); return }
        #expect(first == IKEPayloadType.idi && data.count == 204 - 4)
        for name in Fixture.messages {
            let m = try Fixture.bytes(name)
            #expect(try IKEMessage.decode(m).get().encode() == m, "\(name) re-encoded")
        }
    }

    /// Payloads built here survive a round trip, each kind of body.
    @Test func everyPayloadKindRoundTrips() throws {
        let header = IKEHeader(initiatorSPI: 1, responderSPI: 2, exchange: IKEExchangeType.createChildSA, flags: 0x08, messageID: 7)
        let esp = IKEProposal(number: 1, protocolID: 3, spi: [0xc0, 0, 0x10, 0x01], transforms: [
            IKETransform(type: 1, id: 20, attributes: [.keyLength(128)]),
            IKETransform(type: 1, id: 12, attributes: [.keyLength(256), IKETransformAttribute(type: 99, value: [1, 2, 3], isTV: false)]),
            IKETransform(type: 5, id: 0),
        ])
        let payloads: [IKEPayload] = [
            IKEPayload(type: IKEPayloadType.notify, body: .notify(protocolID: 3, type: 16393, spi: [1, 2, 3, 4], data: [])),
            IKEPayload(type: IKEPayloadType.sa, body: .sa([esp, IKEProposal(number: 2, protocolID: 3, spi: [9, 9, 9, 9], transforms: [IKETransform(type: 1, id: 28)])])),
            IKEPayload(type: IKEPayloadType.nonce, body: .nonce([UInt8](repeating: 7, count: 32))),
            IKEPayload(type: IKEPayloadType.ke, body: .keyExchange(group: 19, data: [UInt8](repeating: 5, count: 64))),
            IKEPayload(type: IKEPayloadType.tsi, body: .trafficSelectors([
                IKETrafficSelector(type: 7, ipProtocol: 0, startPort: 0, endPort: 65535, startAddress: [198, 18, 1, 0], endAddress: [198, 18, 1, 255]),
                IKETrafficSelector(type: 8, ipProtocol: 17, startPort: 500, endPort: 500, startAddress: [UInt8](repeating: 0x20, count: 16), endAddress: [UInt8](repeating: 0x21, count: 16)),
            ])),
            IKEPayload(type: IKEPayloadType.tsr, body: .trafficSelectors([])),
            IKEPayload(type: IKEPayloadType.idi, body: .identification(type: 2, data: Array("gw1.example.org".utf8))),
            IKEPayload(type: IKEPayloadType.auth, body: .authentication(method: 2, data: [UInt8](repeating: 1, count: 32))),
            IKEPayload(type: IKEPayloadType.certreq, body: .certificate(encoding: 4, data: [1, 2])),
            IKEPayload(type: IKEPayloadType.delete, body: .delete(protocolID: 3, spiSize: 4, spis: [[1, 2, 3, 4], [5, 6, 7, 8]])),
            IKEPayload(type: IKEPayloadType.vendorID, body: .vendorID([0xde, 0xad])),
            IKEPayload(type: 200, body: .raw([1, 2, 3])),        // unknown, not critical: kept
            IKEPayload(type: IKEPayloadType.sk, body: .encrypted(firstInner: IKEPayloadType.notify, data: [UInt8](repeating: 0xee, count: 40))),
        ]
        let msg = IKEMessage(header: header, payloads: payloads)
        let bytes = msg.encode()
        #expect(try IKEMessage.decode(bytes).get() == msg)
        #expect(bytes.count == Int(bytes[24]) << 24 | Int(bytes[25]) << 16 | Int(bytes[26]) << 8 | Int(bytes[27]))
    }

    /// §2.5: an unknown payload marked critical refuses the message, naming the type.
    @Test func unknownCriticalPayloadIsRefusedByType() {
        let header = IKEHeader(initiatorSPI: 1, responderSPI: 0, exchange: IKEExchangeType.ikeSAInit, flags: 0x08, messageID: 0)
        let m = IKEMessage(header: header, payloads: [IKEPayload(type: 201, critical: true, body: .raw([0]))]).encode()
        #expect(IKEMessage.decode(m) == .failure(.unsupportedCriticalPayload(201)))
        var v1 = m
        v1[17] = 0x10
        #expect(IKEMessage.decode(v1) == .failure(.unsupportedVersion(0x10)))
    }

    /// Every prefix, every single-byte change and random garbage: a value or an error.
    @Test func hostileBytesNeverTrap() throws {
        var rng = SystemRandomNumberGenerator()
        for name in Fixture.messages {
            let m = try Fixture.bytes(name)
            for n in 0..<m.count { if case .success = IKEMessage.decode(Array(m.prefix(n))) { Issue.record("\(name): \(n)-byte prefix accepted") } }
            for i in 0..<m.count {
                for v: UInt8 in [0, 1, 0x7f, 0x80, 0xff, m[i] ^ 0x01] {
                    var x = m
                    x[i] = v
                    _ = IKEMessage.decode(x)
                }
            }
        }
        for _ in 0..<20_000 {
            let n = Int.random(in: 0..<300, using: &rng)
            var x = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if x.count >= 28 { x[17] = 0x20; x[24] = 0; x[25] = 0; x[26] = UInt8(n >> 8); x[27] = UInt8(n & 0xff) }
            _ = IKEMessage.decode(x)
        }
    }
}
