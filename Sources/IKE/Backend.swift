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
}

public struct IKEBackendError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public protocol EncdBackend: AnyObject {
    /// A fresh SPI for an inbound SA from `peer` to `local` (reserved for a while).
    func allocateSPI(local: IPAddress, peer: IPAddress) throws(IKEBackendError) -> UInt32
    /// Installs both SAs and the flows of a CHILD SA, all or nothing.
    func install(_ child: IKEChildSA) throws(IKEBackendError)
    /// Removes a CHILD SA's SAs and flows.
    func remove(_ child: IKEChildSA) throws(IKEBackendError)
}

/// A backend that only remembers (tests; the engine's contract without encd).
public final class InMemoryBackend: EncdBackend {
    public private(set) var installed: [IKEChildSA] = []
    public private(set) var removed: [IKEChildSA] = []
    public private(set) var allocated: [UInt32] = []
    /// Set to make the next calls fail.
    public var failure: IKEBackendError?
    private var nextSPI: UInt32

    public init(firstSPI: UInt32 = 0x1000) { nextSPI = firstSPI }

    public func allocateSPI(local: IPAddress, peer: IPAddress) throws(IKEBackendError) -> UInt32 {
        if let failure { throw failure }
        defer { nextSPI &+= 1 }
        allocated.append(nextSPI)
        return nextSPI
    }

    public func install(_ child: IKEChildSA) throws(IKEBackendError) {
        if let failure { throw failure }
        guard !installed.contains(where: { $0.inboundSPI == child.inboundSPI }) else { throw IKEBackendError("SA exists") }
        installed.append(child)
    }

    public func remove(_ child: IKEChildSA) throws(IKEBackendError) {
        if let failure { throw failure }
        guard let i = installed.firstIndex(where: { $0.inboundSPI == child.inboundSPI }) else { throw IKEBackendError("no such SA") }
        removed.append(installed.remove(at: i))
    }
}
