// Proposal selection (§2.7, §3.3.6) against charon as the responder: from the recorded
// IKE_SA_INIT request, with charon's configured proposal among ours, encd-iked picks
// the SA payload charon answered with, byte for byte.

import Testing
@testable import IKE

@Suite struct ProposalTests {
    static func ike(_ encr: UInt16, bits: UInt16?, prf: UInt16, dh: UInt16, number: UInt8 = 1) -> IKEProposal {
        IKEProposal(number: number, protocolID: 1, spi: [], transforms: [
            IKETransform(type: 1, id: encr, attributes: bits.map { [.keyLength($0)] } ?? []),
            IKETransform(type: 2, id: prf), IKETransform(type: 4, id: dh),
        ])
    }

    @Test func choosesWhatCharonChose() throws {
        let request = try IKEMessage.decode(try Fixture.bytes("ike_sa_init_request")).get()
        let response = try IKEMessage.decode(try Fixture.bytes("ike_sa_init_response")).get()
        guard case .sa(let offered) = request.payloads[0].body, case .sa(let answered) = response.payloads[0].body else {
            Issue.record("no SA payloads"); return
        }
        let mine = [Self.ike(20, bits: 128, prf: 5, dh: 19), Self.ike(20, bits: 256, prf: 5, dh: 31), Self.ike(12, bits: 256, prf: 7, dh: 31)]
        let chosen = try #require(IKEProposalSelection.select(offered: offered, acceptable: mine))
        #expect([chosen] == answered)
        var a = IKEWriter(), b = IKEWriter()
        IKEPayloads.encode([IKEPayload(type: IKEPayloadType.sa, body: .sa([chosen]))], into: &a)
        IKEPayloads.encode([IKEPayload(type: IKEPayloadType.sa, body: response.payloads[0].body)], into: &b)
        #expect(a.bytes == b.bytes)
    }

    @Test func oneTransformPerTypeFromTheOfferedOrder() {
        // The peer offers two groups and two PRFs in one proposal; ours accepts both.
        let offered = [IKEProposal(number: 3, protocolID: 1, spi: [], transforms: [
            IKETransform(type: 1, id: 20, attributes: [.keyLength(256)]), IKETransform(type: 2, id: 7), IKETransform(type: 2, id: 5),
            IKETransform(type: 4, id: 14), IKETransform(type: 4, id: 31),
        ])]
        let mine = [IKEProposal(number: 1, protocolID: 1, spi: [], transforms: [
            IKETransform(type: 1, id: 20, attributes: [.keyLength(256)]), IKETransform(type: 2, id: 5), IKETransform(type: 2, id: 7),
            IKETransform(type: 4, id: 31), IKETransform(type: 4, id: 14),
        ])]
        let chosen = IKEProposalSelection.select(offered: offered, acceptable: mine)
        #expect(chosen?.number == 3)
        #expect(chosen?.transforms.map { [$0.type, UInt8($0.id)] } == [[1, 20], [2, 7], [4, 14]])
    }

    @Test func mismatchesChooseNothing() {
        let offered = [Self.ike(20, bits: 128, prf: 5, dh: 31)]
        // Key length differs; a group offered where ours has none; a different protocol.
        #expect(IKEProposalSelection.select(offered: offered, acceptable: [Self.ike(20, bits: 256, prf: 5, dh: 31)]) == nil)
        let noGroup = IKEProposal(number: 1, protocolID: 1, spi: [], transforms: [IKETransform(type: 1, id: 20, attributes: [.keyLength(128)]), IKETransform(type: 2, id: 5)])
        #expect(IKEProposalSelection.select(offered: offered, acceptable: [noGroup]) == nil)
        var esp = Self.ike(20, bits: 128, prf: 5, dh: 31)
        esp.protocolID = 3
        #expect(IKEProposalSelection.select(offered: offered, acceptable: [esp]) == nil)
        #expect(IKEProposalSelection.select(offered: offered, acceptable: [Self.ike(20, bits: 128, prf: 5, dh: 31)]) != nil)
    }
}
