// SequenceStore: where sequence numbers are reserved ahead of use, so that a restarted
// encd never goes below anything it used before.
//
//   outbound  the numbers an SA may send. With static keys this is what keeps a
//             (key, IV) pair from repeating under AES-GCM, AES-GMAC, AES-CTR and
//             ChaCha20-Poly1305, whose IV is the sequence number.
//   inbound   the numbers an SA may accept. After a restart the replay window starts
//             above them, so a recorded packet cannot be replayed, and ESN SAs infer
//             the high half of the peer's numbers correctly.
//
// Ownership. A space belongs to exactly one SA object at a time: `claim` hands it to a
// new SA (start, or a replacement on reload) and from then on a reservation under an
// older claim fails. So an SA that is being replaced can go on using what it already
// holds, but can never reserve past the point where its successor starts.
//
// Identity. For ciphers whose IV is the sequence number the space is keyed by the
// key itself (a salted digest), so renumbering the SPI or the peer of an SA with the
// same key continues above the old numbers; for the others by (destination, SPI,
// protocol). The configuration refuses one such key on two SAs.

import Crypto
import EncCore

/// Which way a reserved range is used.
public enum SequenceSpace: String, Sendable, Hashable {
    case outbound = "out"
    case inbound = "in"
}

/// What identifies a sequence space in a store.
public enum SequenceIdentity: Hashable, Sendable {
    /// A digest of the keys (counter-mode and combined ciphers).
    case keys([UInt8])
    /// The SA (every other transform).
    case sa(SAKey)

    /// The identity of `spec`'s space, given the store's salt.
    public static func of(_ spec: SASpec, salt: [UInt8]) -> SequenceIdentity {
        guard spec.usesSequenceAsIV, let key = spec.encryptionKey else { return .sa(spec.key) }
        return .keys(KeyFingerprint.digest(of: [key, spec.integrityKey], salt: salt))
    }
}

extension SASpec {
    /// Whether the cipher's IV is the sequence number, so that one (key, sequence)
    /// must never be used twice.
    public var usesSequenceAsIV: Bool { (encryption?.cipher.saltBits ?? 0) > 0 }

    /// Pairs of SAs (indices into `sas`, the later one first) that share the key of a
    /// cipher whose IV is the sequence number: both would count from the same place and
    /// repeat (key, IV) pairs. Each later SA is reported once, with the first it shares with.
    public static func sharedSequenceKeys(_ sas: [SASpec]) -> [(later: Int, first: Int)] {
        var seen: [[UInt8]: Int] = [:]
        var out: [(later: Int, first: Int)] = []
        let salt = [UInt8](repeating: 0x5a, count: 16)
        for (i, sa) in sas.enumerated() where sa.usesSequenceAsIV {
            guard let key = sa.encryptionKey else { continue }
            let d = KeyFingerprint.digest(of: [key], salt: salt)
            if let first = seen[d] { out.append((i, first)) } else { seen[d] = i }
        }
        return out
    }
}

/// A space handed to one SA object; reservations under an older claim fail.
public struct SequenceClaim: Sendable, Equatable {
    public let identity: SequenceIdentity
    public let space: SequenceSpace
    public let generation: UInt64
    /// The highest number reserved in the space before this claim (0 = none).
    public let reserved: UInt64

    public init(identity: SequenceIdentity, space: SequenceSpace, generation: UInt64, reserved: UInt64) {
        self.identity = identity
        self.space = space
        self.generation = generation
        self.reserved = reserved
    }
}

public protocol SequenceStore: AnyObject, Sendable {
    /// Gives `spec`'s space in `space` to a new SA object: later reservations under any
    /// earlier claim of it fail. The claim carries the highest number ever reserved there.
    func claim(_ spec: SASpec, _ space: SequenceSpace) -> SequenceClaim
    /// Records durably that numbers up to and including `limit` may be used by the
    /// holder of `claim`. False when that could not be made durable, or when the claim
    /// was superseded; the SA then uses nothing beyond what it already holds.
    func reserve(_ claim: SequenceClaim, through limit: UInt64) -> Bool
    /// Whether `claim` is still the newest claim of its space.
    func stillHolds(_ claim: SequenceClaim) -> Bool
    /// Records that numbers above `used` were never used under `claim`, so the next
    /// claim starts right above it. Only when nothing can use the space any more (the
    /// workers have stopped); false when it could not be made durable.
    func settle(_ claim: SequenceClaim, at used: UInt64) -> Bool
    /// Drops `claim`'s space when `claim` still holds it, for an SA a key daemon
    /// removed: its keys never come back (encd refuses them while it runs, and the
    /// daemon derives fresh keys for every CHILD SA), and hourly rekeys must not grow
    /// the store. False when it still holds the space (superseded, or not durable).
    /// The configuration's SAs are never retired: an SA deleted and later loaded again
    /// with the same keys (encctl -d then -f, a reload after a hard expiry) must continue
    /// above every number it ever used.
    func retire(_ claim: SequenceClaim) -> Bool
    /// The highest number recorded for `spec`'s space in `space`, nil when the store
    /// has no record of these keys, without claiming it: whether an SA with these keys
    /// would continue above earlier use (a record at 0: keys known, never used).
    func recorded(_ spec: SASpec, _ space: SequenceSpace) -> UInt64?
}

/// The book-keeping every store shares: per space the highest number reserved and the
/// generation of the current claim. Not locked; the stores lock around it.
public struct SequenceLedger: Sendable {
    public struct Entry: Sendable, Equatable {
        public var reserved: UInt64
        public var generation: UInt64
        /// The SA the space was last claimed for (what the state file shows a reader).
        public var sa: SAKey
        public init(reserved: UInt64, generation: UInt64 = 0, sa: SAKey) {
            self.reserved = reserved
            self.generation = generation
            self.sa = sa
        }
    }
    public struct Key: Hashable, Sendable {
        public var identity: SequenceIdentity
        public var space: SequenceSpace
        public init(_ identity: SequenceIdentity, _ space: SequenceSpace) {
            self.identity = identity
            self.space = space
        }
    }

    public var entries: [Key: Entry] = [:]
    private var generation: UInt64 = 0

    public init() {}

    /// The highest number reserved in a space, nil when it has no entry; a key space
    /// also under the SA's own key (where version 1 and other ciphers recorded it).
    public func recorded(_ identity: SequenceIdentity, _ space: SequenceSpace, sa: SAKey) -> UInt64? {
        let own = entries[Key(identity, space)]?.reserved
        guard case .keys = identity, let legacy = entries[Key(.sa(sa), space)]?.reserved else { return own }
        return max(own ?? 0, legacy)
    }

    public mutating func claim(_ identity: SequenceIdentity, _ space: SequenceSpace, sa: SAKey) -> SequenceClaim {
        generation &+= 1
        let k = Key(identity, space)
        var e = entries[k] ?? Entry(reserved: 0, sa: sa)
        e.generation = generation
        e.sa = sa
        entries[k] = e
        return SequenceClaim(identity: identity, space: space, generation: generation, reserved: e.reserved)
    }

    /// The ledger without `claim`'s space (unchanged when `claim` no longer holds it).
    public func retiring(_ claim: SequenceClaim) -> SequenceLedger {
        var n = self
        if holds(claim) { n.entries[Key(claim.identity, claim.space)] = nil }
        return n
    }

    /// Whether `claim` still holds its space.
    public func holds(_ claim: SequenceClaim) -> Bool {
        entries[Key(claim.identity, claim.space)]?.generation == claim.generation
    }

    /// The ledger after a reservation through `limit` (never lowering what is recorded).
    public func reserving(_ claim: SequenceClaim, through limit: UInt64) -> SequenceLedger {
        updating(claim) { $0 = max($0, limit) }
    }

    /// The ledger with `claim`'s space recorded as used through `used` exactly: lower
    /// than reserved when the holder stopped before using its whole reservation, never
    /// lower than what the claim started from.
    public func settling(_ claim: SequenceClaim, at used: UInt64) -> SequenceLedger {
        updating(claim) { $0 = max(claim.reserved, used) }
    }

    private func updating(_ claim: SequenceClaim, _ change: (inout UInt64) -> Void) -> SequenceLedger {
        var n = self
        let k = Key(claim.identity, claim.space)
        if var e = n.entries[k] {
            change(&e.reserved)
            n.entries[k] = e
        }
        return n
    }
}

/// A store that keeps reservations in memory only: for tests and for `encd -n`.
public final class MemorySequenceStore: SequenceStore, @unchecked Sendable {
    private var ledger = SequenceLedger()
    private let lock = NSLockLike()
    public private(set) var reserveCalls = 0
    public var failReservations = false
    /// The salt of key identities (fixed: nothing is written anywhere).
    private let salt = [UInt8](repeating: 0, count: 16)

    public init() {}

    public func claim(_ spec: SASpec, _ space: SequenceSpace) -> SequenceClaim {
        lock.withLock { ledger.claim(SequenceIdentity.of(spec, salt: salt), space, sa: spec.key) }
    }

    public func stillHolds(_ claim: SequenceClaim) -> Bool { lock.withLock { ledger.holds(claim) } }

    public func settle(_ claim: SequenceClaim, at used: UInt64) -> Bool {
        lock.withLock {
            guard ledger.holds(claim) else { return false }
            ledger = ledger.settling(claim, at: used)
            return true
        }
    }

    public func retire(_ claim: SequenceClaim) -> Bool {
        lock.withLock {
            guard ledger.holds(claim) else { return false }
            ledger = ledger.retiring(claim)
            return true
        }
    }

    /// The highest number recorded for `spec`'s space, nil when it has no entry (tests).
    public func recordedEntry(_ spec: SASpec, _ space: SequenceSpace = .outbound) -> UInt64? {
        lock.withLock { ledger.recorded(SequenceIdentity.of(spec, salt: salt), space, sa: spec.key) }
    }

    public func recorded(_ spec: SASpec, _ space: SequenceSpace) -> UInt64? {
        recordedEntry(spec, space)
    }

    public func reserve(_ claim: SequenceClaim, through limit: UInt64) -> Bool {
        lock.withLock {
            reserveCalls += 1
            guard !failReservations, ledger.holds(claim) else { return false }
            ledger = ledger.reserving(claim, through: limit)
            return true
        }
    }

    /// Pretends that numbers through `limit` were reserved for `spec` earlier (tests
    /// that start an SA near the end of its sequence space).
    public func preload(_ spec: SASpec, _ space: SequenceSpace = .outbound, through limit: UInt64) {
        lock.withLock {
            let c = ledger.claim(SequenceIdentity.of(spec, salt: salt), space, sa: spec.key)
            ledger = ledger.reserving(c, through: limit)
        }
    }
}

import Synchronization

/// A tiny lock for control-path state (no Foundation needed).
final class NSLockLike: @unchecked Sendable {
    private let m = Mutex<Void>(())
    func withLock<R>(_ body: () throws -> R) rethrows -> R { try m.withLock { _ in try body() } }
}
