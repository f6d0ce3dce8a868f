// EncdBackend: what the exchanges ask of the IPsec side (iked's pfkey.c and its
// ipsec_sa_init/add/delete, ipsec_flow_add/delete). encd-iked's real backend speaks
// encd's control protocol (getspi, add, remove); `InMemoryBackend` keeps what it is
// given, so two engines can be run against each other and their SAs compared.

import Crypto
import EncCore

/// One negotiated CHILD SA: a pair of ESP SAs and the flows that use them, bound by
/// `child` so encd takes the newest pair of a binding (a rekey takes over at once).
public struct IKEChildSA: Sendable {
    /// encd's binding number, unique per encd-iked process.
    public var child: UInt32
    /// The policy whose traffic it carries (an IKE SA may carry several policies').
    public var policy: String
    public var mode: IKEChildMode
    public var local: IPAddress
    public var peer: IPAddress
    /// SPIs: the inbound SA's (chosen by us) and the outbound SA's (chosen by the peer).
    public var inboundSPI: UInt32
    public var outboundSPI: UInt32
    public var suite: IKEChildSuite
    public var inboundEncryptionKey: SecretKey
    public var inboundIntegrityKey: SecretKey?
    public var outboundEncryptionKey: SecretKey
    public var outboundIntegrityKey: SecretKey?
    /// RFC 3948 ports when a NAT was detected: ours, the peer's.
    public var udpEncapsulation: (local: UInt16, peer: UInt16)?
    /// The traffic: our side and the peer's (narrowed).
    public var localSelectors: [IKETrafficSelector]
    public var remoteSelectors: [IKETrafficSelector]
    /// Hard and soft lifetimes (seconds, bytes).
    public var hardSeconds: UInt64
    public var softSeconds: UInt64
    public var hardBytes: UInt64
    public var softBytes: UInt64
    /// When it was made, on the engine's clock: a re-install (encd restarted) passes
    /// what is left of its lifetimes in seconds.
    public var installedAt: Double = 0

    /// The same SA with the seconds of its lifetimes that are left at `now` (soft at
    /// least 1 s, so a spent one fires at once and rekeys; hard after soft). Bytes
    /// start again: the counts died with encd.
    public func remaining(at now: Double) -> IKEChildSA {
        let elapsed = now > installedAt ? UInt64(min(now - installedAt, Double(UInt32.max))) : 0
        var c = self
        c.softSeconds = softSeconds > elapsed ? softSeconds - elapsed : 1
        c.hardSeconds = max(c.softSeconds + 1, hardSeconds > elapsed ? hardSeconds - elapsed : 0)
        return c
    }
}

public struct IKEBackendError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Which parts of a CHILD SA a call installs or removes. A rekey adds the new pair's
/// SAs under the same binding (the flows stay); as rekey responder the outbound SA
/// waits until the old pair is deleted (§2.8: the initiator must have the new inbound
/// SA first), and the old pair leaves without its flows.
public struct IKEChildParts: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let inbound = IKEChildParts(rawValue: 1), outbound = IKEChildParts(rawValue: 2), flows = IKEChildParts(rawValue: 4)
    public static let sas: IKEChildParts = [.inbound, .outbound]
    public static let all: IKEChildParts = [.inbound, .outbound, .flows]
}

public protocol EncdBackend: AnyObject {
    /// A fresh SPI for an inbound SA from `peer` to `local` (reserved for a while).
    func allocateSPI(local: IPAddress, peer: IPAddress) throws(IKEBackendError) -> UInt32
    /// Installs `parts` of a CHILD SA, all or nothing.
    func install(_ child: IKEChildSA, parts: IKEChildParts) throws(IKEBackendError)
    /// Removes `parts` of a CHILD SA; removing its flows leaves the policy's unbound
    /// require flows in their place (never a moment without a flow).
    func remove(_ child: IKEChildSA, parts: IKEChildParts) throws(IKEBackendError)
    /// After encd restarted (and lost its SAs): installs `parts` of a CHILD SA the
    /// daemon still holds only if encd continues both SAs' sequence numbers (its state
    /// recorded their keys); otherwise throws and installs nothing.
    func reinstall(_ child: IKEChildSA, parts: IKEChildParts) throws(IKEBackendError)
}

/// A backend that only remembers (tests; the engine's contract without encd).
public final class InMemoryBackend: EncdBackend {
    /// CHILD SAs with at least one of their SAs installed, and which.
    public private(set) var installed: [IKEChildSA] = []
    public private(set) var sas: [UInt32: IKEChildParts] = [:]
    /// Bindings whose flows are installed.
    public private(set) var bindings: Set<UInt32> = []
    public private(set) var removed: [IKEChildSA] = []
    public private(set) var allocated: [UInt32] = []
    /// Every call, in order ("install 0x… in,out,flows").
    public private(set) var calls: [String] = []
    /// Set to make the next calls fail.
    public var failure: IKEBackendError?
    /// SPIs whose keys encd's sequence state recorded (every SA installed), the
    /// condition of `reinstall`.
    public private(set) var recorded: Set<UInt32> = []
    private var nextSPI: UInt32

    public init(firstSPI: UInt32 = 0x1000) { nextSPI = firstSPI }

    public func allocateSPI(local: IPAddress, peer: IPAddress) throws(IKEBackendError) -> UInt32 {
        if let failure { throw failure }
        defer { nextSPI &+= 1 }
        allocated.append(nextSPI)
        return nextSPI
    }

    static func describe(_ p: IKEChildParts) -> String {
        [(IKEChildParts.inbound, "in"), (.outbound, "out"), (.flows, "flows")].filter { p.contains($0.0) }.map(\.1).joined(separator: ",")
    }

    public func install(_ child: IKEChildSA, parts: IKEChildParts) throws(IKEBackendError) {
        if let failure { throw failure }
        let have = sas[child.inboundSPI] ?? []
        guard have.intersection(parts).isEmpty, !parts.contains(.flows) || !bindings.contains(child.child) else {
            throw IKEBackendError("exists")
        }
        if parts.contains(.flows) { bindings.insert(child.child) }
        if parts.contains(.inbound) { recorded.insert(child.inboundSPI) }
        if parts.contains(.outbound) { recorded.insert(child.outboundSPI) }
        let new = parts.intersection(.sas)
        if !new.isEmpty {
            if have.isEmpty { installed.append(child) }
            sas[child.inboundSPI] = have.union(new)
        }
        calls.append("install 0x\(String(child.inboundSPI, radix: 16)) \(Self.describe(parts))")
    }

    public func reinstall(_ child: IKEChildSA, parts: IKEChildParts) throws(IKEBackendError) {
        if let failure { throw failure }
        guard recorded.contains(child.inboundSPI), recorded.contains(child.outboundSPI) else {
            calls.append("reinstall 0x\(String(child.inboundSPI, radix: 16)) refused")
            throw IKEBackendError("the sequence state has no record of these keys")
        }
        try install(child, parts: parts)
        calls[calls.count - 1] = "re" + calls[calls.count - 1]
    }

    /// encd restarted: every SA and binding is gone. Its state file keeps the
    /// records of the keys, unless it was lost (`keepRecords` false).
    public func restart(keepRecords: Bool = true) {
        installed = []
        sas = [:]
        bindings = []
        if !keepRecords { recorded = [] }
        calls.append("restart")
    }

    public func remove(_ child: IKEChildSA, parts: IKEChildParts) throws(IKEBackendError) {
        if let failure { throw failure }
        calls.append("remove 0x\(String(child.inboundSPI, radix: 16)) \(Self.describe(parts))")
        if parts.contains(.flows) { bindings.remove(child.child) }
        guard let have = sas[child.inboundSPI] else {
            if parts.intersection(.sas).isEmpty { return }
            throw IKEBackendError("no such SA")
        }
        let left = have.subtracting(parts)
        if left.isEmpty, let i = installed.firstIndex(where: { $0.inboundSPI == child.inboundSPI }) {
            sas[child.inboundSPI] = nil
            removed.append(installed.remove(at: i))
        } else {
            sas[child.inboundSPI] = left
        }
    }
}
