// Narrowing traffic selectors as the responder (RFC 7296 §2.9): the initiator proposes
// TSi/TSr (its most specific selector may come first, the packet that triggered the
// negotiation); the responder answers with the part its policy allows, the
// intersection of each proposed selector with each configured one: the overlap of the
// address ranges, of the port ranges, and the IP protocol (0 is any). Nothing left:
// TS_UNACCEPTABLE (§2.21.2), and the IKE SA stays.

public enum IKETrafficSelectorNarrowing {
    /// Every non-empty intersection of a proposed selector with a configured one, in the
    /// proposed order, without duplicates.
    public static func narrow(proposed: [IKETrafficSelector], configured: [IKETrafficSelector]) -> [IKETrafficSelector] {
        var out: [IKETrafficSelector] = []
        for p in proposed {
            for c in configured {
                if let i = intersection(p, c), !out.contains(i) { out.append(i) }
            }
        }
        return out
    }

    static func intersection(_ a: IKETrafficSelector, _ b: IKETrafficSelector) -> IKETrafficSelector? {
        guard a.type == b.type, a.startAddress.count == b.startAddress.count, a.endAddress.count == a.startAddress.count,
              b.endAddress.count == b.startAddress.count else { return nil }
        let proto: UInt8
        if a.ipProtocol == 0 { proto = b.ipProtocol } else if b.ipProtocol == 0 || b.ipProtocol == a.ipProtocol { proto = a.ipProtocol } else { return nil }
        let startPort = Swift.max(a.startPort, b.startPort), endPort = Swift.min(a.endPort, b.endPort)
        guard startPort <= endPort else { return nil }
        // Addresses compare as big-endian byte strings of equal length.
        let start = later(a.startAddress, b.startAddress)
        let end = earlier(a.endAddress, b.endAddress)
        guard !lexicographic(end, start) else { return nil }
        return IKETrafficSelector(type: a.type, ipProtocol: proto, startPort: startPort, endPort: endPort, startAddress: start, endAddress: end)
    }

    static func lexicographic(_ x: [UInt8], _ y: [UInt8]) -> Bool { x.lexicographicallyPrecedes(y) }
    static func later(_ x: [UInt8], _ y: [UInt8]) -> [UInt8] { lexicographic(x, y) ? y : x }
    static func earlier(_ x: [UInt8], _ y: [UInt8]) -> [UInt8] { lexicographic(y, x) ? y : x }
}
