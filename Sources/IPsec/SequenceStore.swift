// SequenceStore: where outbound sequence numbers are reserved ahead of use, so that a
// restarted encd continues above anything it ever sent. With static keys this is what
// keeps a (key, IV) pair from repeating under AES-GCM, AES-GMAC, AES-CTR and
// ChaCha20-Poly1305, whose IV is the sequence number.
//
// The core asks for a new reservation when an SA has used up most of the current one;
// the daemon's implementation writes and fsyncs the high-water mark before answering.

public protocol SequenceStore: AnyObject, Sendable {
    /// The first sequence number an SA may use: one above the highest ever reserved
    /// for it (1 for a new SA).
    func firstSequence(for sa: SAKey) -> UInt64
    /// Records durably that numbers up to and including `limit` may be used. Returns
    /// false when that could not be made durable; the SA then sends nothing beyond
    /// what was already reserved.
    func reserve(_ sa: SAKey, through limit: UInt64) -> Bool
    // There is deliberately no "forget": an SA deleted and later loaded again with the
    // same keys (encctl -d then -f, a reload after a hard expiry) must continue above
    // every number it ever used, or AES-GCM/CTR/ChaCha would repeat (key, IV) pairs.
    // A store keeps one line per SA ever configured, which stays small.
}

/// A store that keeps reservations in memory only: for tests and for `encd -n`.
public final class MemorySequenceStore: SequenceStore, @unchecked Sendable {
    private var reserved: [SAKey: UInt64] = [:]
    private let lock = NSLockLike()
    public private(set) var reserveCalls = 0
    public var failReservations = false

    public init() {}

    public func firstSequence(for sa: SAKey) -> UInt64 {
        lock.withLock { (reserved[sa] ?? 0) + 1 }
    }

    public func reserve(_ sa: SAKey, through limit: UInt64) -> Bool {
        lock.withLock {
            reserveCalls += 1
            if failReservations { return false }
            reserved[sa] = max(reserved[sa] ?? 0, limit)
            return true
        }
    }

}

import Synchronization

/// A tiny lock for control-path state (no Foundation needed).
final class NSLockLike: @unchecked Sendable {
    private let m = Mutex<Void>(())
    func withLock<R>(_ body: () throws -> R) rethrows -> R { try m.withLock { _ in try body() } }
}
