// SecurityAssociation: one SA, one direction, with everything the packet path needs
// prepared once when the SA is added — the crypto context, the outer-header template
// fields, the replay window, the sequence counter, lifetimes and per-SA counters.
//
// Ownership, in three parts:
//   description   spec, keys, crypto contexts: immutable once built
//   worker state  the next sequence number or the replay window: one worker runs the
//                 SA's packets at a time (each SA's packets go to one worker, which
//                 keeps their order), so it is not locked
//   shared        counters (CounterBlock), lifetimes, the published sequence number,
//                 the durable reservation and the NAT-T endpoint: atomics, readable
//                 from any thread; the control side never writes worker state

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

    // Worker-owned state: read and written only by the worker that runs the SA's
    // packets (outbound: the next number to send; inbound: the replay window). The
    // control side reads the published copies below. Hence @exclusivity(unchecked)
    // (Docs/architecture.md, "No run-time exclusivity checks on the packet path").
    /// Outbound: the next sequence number to send (full 64 bits; only the low half goes
    /// on the wire without ESN).
    @exclusivity(unchecked) public private(set) var nextSequence: UInt64 = 1
    /// Inbound: the anti-replay window.
    @exclusivity(unchecked) public var replay: ReplayWindow

    // Shared with the control side, through atomics.
    /// Durable reservations (nil: no store, every number may be used at once).
    public let reservation: SequenceReservation?
    /// The last number sent (outbound) or the newest accepted (inbound), for status.
    private let publishedSequence = Atomic<UInt64>(0)
    private let exhaustedFlag = Atomic<Bool>(false)
    private let firstUse = Atomic<UInt64>(SecurityAssociation.unused)
    private static let unused = UInt64.max

    // Lifetimes, in the caller's monotonic seconds.
    public let addedAt: UInt64
    /// Rises with every SA object made: among the SAs of one CHILD binding the highest
    /// is the newest (a rekeyed pair takes over as soon as its outbound SA is added).
    public let serial: UInt64
    private static let serials = Atomic<UInt64>(0)
    private let lifetimeState = Atomic<UInt8>(0)   // bit 0: soft passed, bit 1: hard passed
    public var softExpired: Bool { lifetimeState.load(ordering: .relaxed) & 1 != 0 }
    public var hardExpired: Bool { lifetimeState.load(ordering: .relaxed) & 2 != 0 }

    // NAT-T: the peer's address and port as its authenticated packets arrive (RFC 3948
    // §3.5 lets a receiver follow them). Written by the worker of the inbound SA
    // (through the SAD's pairing of inbound and outbound SAs), read by the worker of
    // this outbound one: packed into one word (bit 63 = set, bits 32-47 = port, bits
    // 0-31 = IPv4 address or 0 for IPv6 peers).
    private let natLearned = Atomic<UInt64>(0)

    /// The highest sequence number this SA may ever use.
    public var sequenceLimit: UInt64 { spec.extendedSequence ? UInt64.max : UInt64(UInt32.max) }

    /// Builds the SA and its crypto context. `direction` says which way it carries
    /// traffic from this host's point of view. With a `store`, the SA uses no sequence
    /// number (outbound) and accepts none (inbound) until `activate` claimed its space.
    public init(_ spec: SASpec, direction: FlowDirection, store: SequenceStore?,
                reserver: SequenceReserver = SynchronousReserver.shared, now: UInt64,
                reservationChunk: UInt64? = nil) throws {
        self.spec = spec
        self.key = spec.key
        self.direction = direction
        self.addedAt = now
        self.serial = Self.serials.add(1, ordering: .relaxed).newValue
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
        let ceiling = spec.extendedSequence ? UInt64.max : UInt64(UInt32.max)
        let space: SequenceSpace = direction == .outbound ? .outbound : .inbound
        reservation = store.map {
            SequenceReservation(space: space, ceiling: ceiling, store: $0, reserver: reserver,
                                chunk: reservationChunk ?? SequenceReservation.defaultChunk(space))
        }
    }

    /// Control side, once, before the SA becomes reachable by any worker (the snapshot
    /// swap publishes what this writes): claims the SA's sequence space in the store
    /// and starts above everything ever reserved in it. An outbound SA sends from there;
    /// an inbound SA treats every number up to there as already received, so nothing
    /// recorded before a restart can be replayed and ESN inference knows the high half.
    public func activate() {
        guard let reservation else { return }
        let base = reservation.activate(spec)
        switch direction {
        case .outbound:
            if base >= sequenceLimit { exhaustedFlag.store(true, ordering: .relaxed) }
            nextSequence = base &+ 1
        case .inbound:
            replay.reset(top: base)
        }
        publishedSequence.store(base, ordering: .relaxed)
    }

    /// Control side, after the workers stopped: records exactly how far the SA got, so
    /// the next start continues right above it (a clean restart skips nothing and, for
    /// an inbound SA, refuses none of the peer's next packets).
    public func settle() {
        reservation?.settle(at: publishedSequence.load(ordering: .relaxed))
    }

    /// Set when the SA may send no more (its sequence space is used up).
    public var exhausted: Bool { exhaustedFlag.load(ordering: .relaxed) }

    /// The last number sent (outbound) or the newest accepted (inbound); any thread.
    public var lastSequence: UInt64 { publishedSequence.load(ordering: .relaxed) }

    /// The sequence number for the next outbound packet; nil when none may be used now
    /// (`exhausted` tells whether ever again). The caller drops and counts the packet.
    @inline(__always) public func takeSequence() -> UInt64? {
        let seq = nextSequence
        guard !exhausted else { return nil }
        guard seq <= sequenceLimit else {
            exhaustedFlag.store(true, ordering: .relaxed)
            return nil
        }
        if let reservation {
            // A retired SA asks for nothing more: its successor owns the space.
            var limit = reservation.limit
            if seq > limit {
                if hardExpired { return nil }
                reservation.ask(seq)
                limit = reservation.limit
                guard seq <= limit else { return nil }
            } else if reservation.runningLow(after: seq, limit: limit) && !hardExpired {
                reservation.ask(limit &+ 1)
            }
        }
        nextSequence = seq &+ 1
        publishedSequence.store(seq, ordering: .relaxed)
        return seq
    }

    /// Whether an authenticated inbound packet numbered `seq` may be accepted: only
    /// numbers the store recorded ahead of use (so that after a restart the window can
    /// start above every number accepted before). Asks for more as the peer advances.
    @inline(__always) public func mayAccept(_ seq: UInt64) -> Bool {
        guard let reservation else { return true }
        var limit = reservation.limit
        if seq > limit {
            reservation.ask(seq)
            limit = reservation.limit
            return seq <= limit
        }
        if reservation.runningLow(after: seq, limit: limit) { reservation.ask(limit &+ 1) }
        return true
    }

    /// Records that an inbound packet numbered `seq` was accepted (after `commit`).
    @inline(__always) public func accepted(_ seq: UInt64) {
        if seq > publishedSequence.load(ordering: .relaxed) { publishedSequence.store(seq, ordering: .relaxed) }
    }

    /// Records one packet through the SA (on its worker) and counts a lifetime
    /// crossing in `stats`, once per SA.
    @inline(__always) public func account(bytes: Int, now: UInt64, stats: CounterBlock<Counter>) {
        counters.add(.packets)
        counters.add(.bytes, UInt64(bytes))
        if firstUse.load(ordering: .relaxed) == Self.unused { firstUse.store(now, ordering: .relaxed) }
        switch checkLifetime(now: now) {
        case .soft: stats.add(.saSoftExpired)
        case .hard: stats.add(.saHardExpired)
        case .none: break
        }
    }

    /// When the SA first carried a packet (clock seconds), if it has.
    public var firstUsedAt: UInt64? {
        let v = firstUse.load(ordering: .relaxed)
        return v == Self.unused ? nil : v
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

    /// Called (on the inbound SA's worker) for every authenticated UDP-encapsulated
    /// packet of the inbound SA paired with this outbound one: follows the peer's
    /// address and port if a NAT changed them. Returns true when the endpoint changed.
    @discardableResult
    public func learnNATEndpoint(address: IPAddress, port: UInt16) -> Bool {
        let addr: UInt64 = address.family == .inet && address != spec.destination ? UInt64(address.v4) : 0
        let packed: UInt64 = 1 << 63 | UInt64(port) << 32 | addr
        if natLearned.load(ordering: .relaxed) == packed { return false }
        if addr == 0 && port == (spec.encapsulation?.peerPort ?? spec.encapsulation?.port) &&
            natLearned.load(ordering: .relaxed) == 0 { return false }
        natLearned.store(packed, ordering: .relaxed)
        return true
    }

    /// Whether `l` is used up at `now`. Sums saturate: a limit near 2^64 never passes.
    private func exceeds(_ l: Lifetime, now: UInt64) -> Bool {
        if l.isUnlimited { return false }
        if let b = l.bytes, counters[.bytes] >= b { return true }
        if let p = l.packets, counters[.packets] >= p { return true }
        if let s = l.seconds, now >= Lifetime.deadline(addedAt, s) { return true }
        if let s = l.secondsSinceUse, let f = firstUsedAt, now >= Lifetime.deadline(f, s) { return true }
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

extension Lifetime {
    /// `start + seconds`, or never (UInt64.max) when that does not fit.
    @inline(__always) public static func deadline(_ start: UInt64, _ seconds: UInt64) -> UInt64 {
        let (t, overflow) = start.addingReportingOverflow(seconds)
        return overflow ? .max : t
    }
}

public struct SAError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
