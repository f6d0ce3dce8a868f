// DS field handling for tunnel mode: ECN per RFC 6040 (normal mode), DSCP copied
// inner -> outer on encapsulation (RFC 4301 5.1.2.1; the inner DSCP is left alone on
// decapsulation), and the outer DF bit per RFC 4301 8.1. Pure values: the caller
// writes the result with the header views' setters, which fix the IPv4 checksum.

/// The 2-bit ECN field (RFC 3168 5).
public enum ECN: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case notECT = 0b00
    case ect1 = 0b01
    case ect0 = 0b10
    case ce = 0b11

    /// The ECN bits of a TOS / traffic class byte.
    @inlinable
    public init(bits tos: UInt8) { self = ECN(rawValue: tos & 0x03)! }

    public var isECT: Bool { self == .ect0 || self == .ect1 }

    public var description: String {
        switch self {
        case .notECT: return "Not-ECT"
        case .ect1: return "ECT(1)"
        case .ect0: return "ECT(0)"
        case .ce: return "CE"
        }
    }
}

/// What decapsulation does with the inner packet's ECN field.
public enum ECNDecapsulation: Sendable, Hashable {
    /// Write this ECN into the inner header (it may equal the current one).
    case set(ECN)
    /// Drop: the outer header says CE but the inner transport cannot hear it.
    case drop
}

public enum TunnelECN {
    /// RFC 6040 4.1: normal mode copies the inner ECN field (CE stays CE);
    /// compatibility mode sends Not-ECT outside.
    public enum Mode: Sendable { case normal, compatibility }

    /// The outer ECN on encapsulation.
    @inlinable
    public static func encapsulate(inner: ECN, mode: Mode = .normal) -> ECN {
        mode == .normal ? inner : .notECT
    }

    /// The inner ECN on decapsulation: RFC 6040 4.2, Figure 4.
    ///
    ///     inner \ outer   Not-ECT   ECT(0)    ECT(1)    CE
    ///     Not-ECT         Not-ECT   Not-ECT   Not-ECT   drop
    ///     ECT(0)          ECT(0)    ECT(0)    ECT(1)    CE
    ///     ECT(1)          ECT(1)    ECT(1)    ECT(1)    CE
    ///     CE              CE        CE        CE        CE
    @inlinable
    public static func decapsulate(inner: ECN, outer: ECN) -> ECNDecapsulation {
        switch (inner, outer) {
        case (.notECT, .ce): return .drop
        case (.notECT, _): return .set(.notECT)
        case (.ce, _): return .set(.ce)
        case (_, .ce): return .set(.ce)
        case (.ect0, .ect1): return .set(.ect1)
        default: return .set(inner)
        }
    }

    /// The combinations RFC 6040 marks "(!!!)": currently unused, worth a
    /// (rate-limited) log because something on the path misbehaves.
    @inlinable
    public static func isUnexpected(inner: ECN, outer: ECN) -> Bool {
        (inner == .notECT && outer != .notECT) || (inner == .ce && outer == .ect1)
    }
}

/// The DS field (TOS / traffic class byte) across a tunnel.
public enum TunnelDSField {
    /// The outer DS byte on encapsulation: DSCP copied from inside, ECN per `mode`.
    @inlinable
    public static func encapsulate(inner: UInt8, mode: TunnelECN.Mode = .normal) -> UInt8 {
        (inner & 0xfc) | TunnelECN.encapsulate(inner: ECN(bits: inner), mode: mode).rawValue
    }

    /// The inner DS byte after decapsulation (inner DSCP kept, ECN per RFC 6040), or
    /// nil when the packet must be dropped.
    @inlinable
    public static func decapsulate(inner: UInt8, outer: UInt8) -> UInt8? {
        switch TunnelECN.decapsulate(inner: ECN(bits: inner), outer: ECN(bits: outer)) {
        case .drop: return nil
        case .set(let e): return (inner & 0xfc) | e.rawValue
        }
    }
}

/// The outer IPv4 DF bit in tunnel mode (RFC 4301 8.1: a per-SA choice).
public enum DFBitPolicy: String, Sendable, CaseIterable {
    case copy, set, clear

    /// The outer DF bit. An IPv6 inner packet has no DF bit (pass `innerDF: nil`);
    /// `copy` then sets DF, since IPv6 packets are never fragmented on the path.
    @inlinable
    public func outerDF(innerDF: Bool?) -> Bool {
        switch self {
        case .set: return true
        case .clear: return false
        case .copy: return innerDF ?? true
        }
    }
}
