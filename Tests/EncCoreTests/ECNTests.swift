import Testing
@testable import EncCore

// RFC 6040 4.2, Figure 4: rows are the arriving inner ECN, columns the outer
// (Not-ECT, ECT(0), ECT(1), CE); nil = drop.
@Test func ecnDecapsulationFollowsRFC6040Table() {
    let outers: [ECN] = [.notECT, .ect0, .ect1, .ce]
    let table: [(ECN, [ECN?])] = [
        (.notECT, [.notECT, .notECT, .notECT, nil]),
        (.ect0, [.ect0, .ect0, .ect1, .ce]),
        (.ect1, [.ect1, .ect1, .ect1, .ce]),
        (.ce, [.ce, .ce, .ce, .ce]),
    ]
    for (inner, row) in table {
        for (outer, want) in zip(outers, row) {
            let got = TunnelECN.decapsulate(inner: inner, outer: outer)
            #expect(got == (want.map { .set($0) } ?? .drop), "inner \(inner) outer \(outer)")
        }
    }
}

@Test func ecnUnexpectedCombinationsAreTheTriplePlingCells() {
    var flagged = [(ECN, ECN)]()
    for i in ECN.allCases { for o in ECN.allCases where TunnelECN.isUnexpected(inner: i, outer: o) { flagged.append((i, o)) } }
    #expect(flagged.count == 4)
    #expect(TunnelECN.isUnexpected(inner: .notECT, outer: .ce))
    #expect(TunnelECN.isUnexpected(inner: .ce, outer: .ect1))
    #expect(!TunnelECN.isUnexpected(inner: .ect1, outer: .ect0))
}

@Test func ecnEncapsulationCopiesInNormalMode() {
    for e in ECN.allCases {
        #expect(TunnelECN.encapsulate(inner: e) == e)
        #expect(TunnelECN.encapsulate(inner: e, mode: .compatibility) == .notECT)
    }
}

@Test func dsFieldCopiesDSCPOutAndKeepsInnerDSCPOnDecap() {
    #expect(TunnelDSField.encapsulate(inner: 0xbb) == 0xbb)              // EF + CE -> EF + CE
    #expect(TunnelDSField.encapsulate(inner: 0xbb, mode: .compatibility) == 0xb8)
    #expect(TunnelDSField.decapsulate(inner: 0x2a, outer: 0xbb) == 0x2b) // AF11+ECT(0), outer CE -> CE, DSCP kept
    #expect(TunnelDSField.decapsulate(inner: 0x28, outer: 0x03) == nil)  // Not-ECT inner, CE outer: drop
    #expect(TunnelDSField.decapsulate(inner: 0x29, outer: 0x02) == 0x29)
}

@Test func dfPolicyFollowsRFC4301() {
    #expect(DFBitPolicy.copy.outerDF(innerDF: true) && !DFBitPolicy.copy.outerDF(innerDF: false))
    #expect(DFBitPolicy.copy.outerDF(innerDF: nil))
    #expect(DFBitPolicy.set.outerDF(innerDF: false) && !DFBitPolicy.clear.outerDF(innerDF: true))
}
