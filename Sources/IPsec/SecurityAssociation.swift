// SecurityAssociation: one SA, one direction, with everything the packet path needs
// prepared once when the SA is added — the crypto context, the outer-header template
// fields, the replay window, the sequence counter, lifetimes and per-SA counters.
//
// Ownership: the packet path of an SA runs on one worker at a time (packets of one SA
// are kept in order by always handing them to the same worker), so the mutable state
// below is not locked. The control path reads counters through CounterBlock (safe from
// any thread) and everything else only through `status` snapshots taken by the owner.

import Crypto
import EncCore
import Synchronization

/// Per-SA counters (`encctl -s sa -v`, `encstat -a`).
public enum SACounter: Int, CounterIndex {
    case packets, bytes, drops, replayDrops, authFailures
}

/// Lifetime events an SA reports once each.
public enum LifetimeEvent: Sendable, Equatable {
    case none, soft, hard
}

public final class SecurityAssociation: @unchecked Sendable {
    public let spec: SASpec
    public let key: SAKey
    public let direction: FlowDirection

    /// The ESP transform (ESP SAs) or the ICV engine (AH SAs).
    public let esp: ESPTransform?
    public let ah: Authenticator?

    public let counters = CounterBlock<SACounter>()

    // Outbound state.
    /// The next sequence number to send (full 64 bits; only the low half goes on the
    /// wire without ESN).
    public private(set) var nextSequence: UInt64
    /// Numbers up to this one are durably reserved.
    public private(set) var reservedThrough: UInt64
    private let store: SequenceStore?
    /// How many numbers one reservation covers.
    public let reservationChunk: UInt64

    // Inbound state.
    public var replay: ReplayWindow

    // Lifetimes, in the caller's monotonic seconds.
    public let addedAt: UInt64
    public private(set) var firstUsedAt: UInt64?
    private let lifetimeState = Atomic<UInt8>(0)   // bit 0: soft passed, bit 1: hard passed
    public var softExpired: Bool { lifetimeState.load(ordering: .relaxed) & 1 != 0 }
    public var hardExpired: Bool { lifetimeState.load(ordering: .relaxed) & 2 != 0 }

    // NAT-T: the peer's address and port as its authenticated packets arrive (RFC 3948
    // §3.5 lets a receiver follow them). Written by the worker of the inbound SA,
    // read by the worker of the outbound one: packed into one word (bit 63 = set,
    // bits 32-47 = port, bits 0-31 = IPv4 address or 0 for IPv6 peers).
    private let natLearned = Atomic<UInt64>(0)
    /// The outbound SA towards the same peer, whose NAT-T endpoint this inbound SA updates.
    public weak var natPartner: SecurityAssociation?
    /// Set when the SA may send no more (sequence space used up or reservation failed).
    public private(set) var exhausted = false

    /// The highest sequence number this SA may ever use.
    public var sequenceLimit: UInt64 { spec.extendedSequence ? UInt64.max : UInt64(UInt32.max) }

    /// Builds the SA and its crypto context. `direction` says which way it carries
    /// traffic from this host's point of view; an outbound SA takes its first sequence
    /// number from `store`.
    public init(_ spec: SASpec, direction: FlowDirection, store: SequenceStore?, now: UInt64,
                reservationChunk: UInt64 = 1 << 16) throws {
        self.spec = spec
        self.key = spec.key
        self.direction = direction
        self.store = store
        self.reservationChunk = max(1, reservationChunk)
        self.addedAt = now
        switch spec.proto {
        case .esp:
            esp = try ESPTransform(encryption: spec.encryption ?? EncryptionAlgorithm.defaultESP,
                                   encryptionKey: spec.encryptionKey,
                                   integrity: spec.integrity, integrityKey: spec.integrityKey)
            ah = nil
        case .ah:
            guard let alg = spec.integrity, let k = spec.integrityKey else {
                throw SAError("AH SA \(spec.key) has no authentication algorithm or key")
            }
            ah = try Authenticator(algorithm: alg, key: k)
            esp = nil
        }
        replay = ReplayWindow(size: spec.replayWindow, extended: spec.extendedSequence)
        let first = direction == .outbound ? (store?.firstSequence(for: spec.key) ?? 1) : 1
        nextSequence = first
        reservedThrough = first - 1
    }

    /// The sequence number for the next outbound packet, reserving ahead as needed;
    /// nil when the SA may send nothing more (the caller drops and counts the packet).
    @inline(__always) public func takeSequence() -> UInt64? {
        let seq = nextSequence
        guard !exhausted, seq <= sequenceLimit else {
            exhausted = true
            return nil
        }
        // A retired SA reserves nothing more: its successor with the same SPI has
        // already started above everything reserved so far.
        if seq > reservedThrough && hardExpired { return nil }
        if seq > reservedThrough {
            guard reserveMore(from: seq) else { return nil }
        }
        nextSequence = seq + 1
        return seq
    }

    private func reserveMore(from seq: UInt64) -> Bool {
        guard let store else {
            reservedThrough = sequenceLimit
            return true
        }
        let limit = min(sequenceLimit, seq &+ reservationChunk - 1 < seq ? sequenceLimit : seq + reservationChunk - 1)
        guard store.reserve(key, through: limit) else { return false }
        reservedThrough = limit
        return true
    }

    /// Records one packet through the SA (on its worker) and counts a lifetime
    /// crossing in `stats`, once per SA.
    @inline(__always) public func account(bytes: Int, now: UInt64, stats: CounterBlock<Counter>) {
        counters.add(.packets)
        counters.add(.bytes, UInt64(bytes))
        if firstUsedAt == nil { firstUsedAt = now }
        switch checkLifetime(now: now) {
        case .soft: stats.add(.saSoftExpired)
        case .hard: stats.add(.saHardExpired)
        case .none: break
        }
    }

    /// Compares usage and age with the lifetimes and reports a crossing exactly once,
    /// whichever thread notices it first (a worker on traffic, the control thread on
    /// time).
    public func checkLifetime(now: UInt64) -> LifetimeEvent {
        let state = lifetimeState.load(ordering: .relaxed)
        if state & 2 == 0 && exceeds(spec.hardLifetime, now: now) {
            return lifetimeState.bitwiseOr(3, ordering: .relaxed).oldValue & 2 == 0 ? .hard : .none
        }
        if state & 1 == 0 && exceeds(spec.softLifetime, now: now) {
            return lifetimeState.bitwiseOr(1, ordering: .relaxed).oldValue & 1 == 0 ? .soft : .none
        }
        return .none
    }

    /// Marks the SA unusable at once (deleted, or its hard lifetime passed elsewhere).
    public func invalidate() { lifetimeState.bitwiseOr(3, ordering: .relaxed) }

    /// The peer's NAT-T endpoint as learned from its traffic, if any.
    @inline(__always) public func natEndpoint() -> (IPAddress?, UInt16?) {
        let v = natLearned.load(ordering: .relaxed)
        guard v >> 63 == 1 else { return (nil, nil) }
        let port = UInt16(truncatingIfNeeded: v >> 32)
        let addr = UInt32(truncatingIfNeeded: v)
        return (addr == 0 ? nil : IPAddress(v4: addr), port)
    }

    /// Called by the inbound SA's worker for every authenticated UDP-encapsulated
    /// packet: follows the peer's address and port if a NAT changed them. Returns true
    /// when the endpoint changed.
    @discardableResult
    public func learnNATEndpoint(address: IPAddress, port: UInt16) -> Bool {
        guard let out = natPartner else { return false }
        let addr: UInt64 = address.family == .inet && address != out.spec.destination ? UInt64(address.v4) : 0
        let packed: UInt64 = 1 << 63 | UInt64(port) << 32 | addr
        if out.natLearned.load(ordering: .relaxed) == packed { return false }
        if addr == 0 && port == (out.spec.encapsulation?.peerPort ?? out.spec.encapsulation?.port) &&
            out.natLearned.load(ordering: .relaxed) == 0 { return false }
        out.natLearned.store(packed, ordering: .relaxed)
        return true
    }

    private func exceeds(_ l: Lifetime, now: UInt64) -> Bool {
        if l.isUnlimited { return false }
        if let b = l.bytes, counters[.bytes] >= b { return true }
        if let p = l.packets, counters[.packets] >= p { return true }
        if let s = l.seconds, now >= addedAt + s { return true }
        if let s = l.secondsSinceUse, let f = firstUsedAt, now >= f + s { return true }
        return false
    }

    /// Overhead the SA adds to a packet at most (for enc0's MTU).
    public var maximumOverhead: Int {
        let outer = spec.mode == .tunnel ? (spec.destination.family == .inet ? 20 : 40) : 0
        let udp = spec.encapsulation != nil ? 8 : 0
        if let esp {
            // SPI + seq + IV + worst padding + pad length + next header + ICV.
            return outer + udp + 8 + esp.ivLength + (esp.padAlignment - 1) + 2 + esp.icvLength
        }
        let icv = ah?.icvLength ?? 0
        return outer + 12 + ((icv + 3) & ~3) + (spec.destination.family == .inet6 ? 8 : 0)
    }
}

public struct SAError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
