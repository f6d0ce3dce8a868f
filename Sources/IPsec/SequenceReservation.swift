// SequenceReservation: the part of an SA's sequence numbers that two threads share.
//
//   worker (packet path)   reads `limit` (one atomic load per packet), uses numbers up
//                          to it, and asks for more when fewer than half a chunk are
//                          left: `ask` stores what it needs and wakes the reserver
//   reserver (control)     makes the next chunk durable in the SequenceStore, then
//                          publishes the new `limit`
//
// The packet path never waits on the disk: when the reserver falls behind, a packet
// beyond `limit` is dropped and counted (never sent or accepted on a number that is not
// durably recorded). The claim on the store's space is made once, by the control side,
// when the SA is activated; only the holder of the current claim can reserve.

import Synchronization

/// Who extends reservations when a worker asks: a thread in the daemon, or the
/// caller's own thread in tests and tools (`SequenceReserver.synchronous`).
public protocol SequenceReserver: AnyObject, Sendable {
    /// A worker needs numbers for `r` (called when fewer than half a chunk are left).
    func wake(_ r: SequenceReservation)
}

/// Extends a reservation on the asking thread (tests, benchmarks, `encd -n`).
public final class SynchronousReserver: SequenceReserver {
    public init() {}
    public func wake(_ r: SequenceReservation) { _ = r.extend(now: 0) }
    public static let shared = SynchronousReserver()
}

/// What `extend` did.
public enum ReservationResult: Sendable, Equatable {
    /// The new limit is durable and published (or the SA already has all it can use).
    case extended
    /// The store could not make it durable (disk full, read-only): try again later.
    case failed
    /// The SA was never activated, or a newer SA holds its space: nothing to do, ever.
    case superseded
}

public final class SequenceReservation: Sendable {
    public let space: SequenceSpace
    /// Numbers up to and including this may be used (written by the reserver).
    private let published = Atomic<UInt64>(0)
    /// Non-zero while a worker waits for numbers through at least this one.
    private let wanted = Atomic<UInt64>(0)
    /// When fewer numbers than this are left a worker asks for more: half the chunk
    /// outbound, three quarters inbound (small inbound chunks must be extended before a
    /// burst uses them up: a packet beyond the limit is dropped).
    private let lowWater: Atomic<UInt64>
    /// The highest number the SA may ever use (2^32-1 without ESN).
    public let ceiling: UInt64
    private let store: SequenceStore
    private let reserver: SequenceReserver
    /// Control side only: the claim on the store, and how much one reservation takes.
    private let control: Mutex<(claim: SequenceClaim?, chunk: UInt64, failures: UInt64, lastAt: UInt64)>
    /// The smallest chunk (the largest is `maximumChunk`); `extend` sizes the rest.
    public let minimumChunk: UInt64
    /// Default smallest chunks: outbound numbers are cheap to skip (a restart after a
    /// crash skips at most one chunk); inbound ones are not (after a crash the peer's
    /// packets up to the recorded mark are refused), so those start small and grow
    /// with the SA's rate.
    public static func defaultChunk(_ space: SequenceSpace) -> UInt64 { space == .outbound ? 1 << 16 : 64 }
    public static let maximumChunk: UInt64 = 1 << 22
    /// How long a chunk should last at the SA's rate, in milliseconds. Outbound numbers
    /// are cheap to skip; an inbound chunk is what the peer loses after a crash (its
    /// packets up to the recorded mark are refused as replays), so inbound chunks last a
    /// quarter of a second: enough to ride out a disk write during a burst.
    static func chunkLifetime(_ space: SequenceSpace) -> UInt64 { space == .outbound ? 2_000 : 250 }

    public init(space: SequenceSpace, ceiling: UInt64, store: SequenceStore, reserver: SequenceReserver,
                chunk: UInt64) {
        self.space = space
        self.ceiling = ceiling
        self.store = store
        self.reserver = reserver
        minimumChunk = max(4, min(chunk, Self.maximumChunk))
        control = Mutex((nil, minimumChunk, 0, 0))
        lowWater = Atomic(Self.lowWater(minimumChunk, space))
    }

    /// What may be used now.
    @inline(__always) public var limit: UInt64 { published.load(ordering: .acquiring) }

    /// The worker needs numbers through `seq`, or runs low: asks once until served.
    @inline(__always) public func ask(_ seq: UInt64) {
        if wanted.load(ordering: .relaxed) >= seq { return }
        wanted.store(seq, ordering: .relaxed)
        reserver.wake(self)
    }

    /// Whether the worker should ask for more: fewer than half a chunk left after `seq`.
    @inline(__always) public func runningLow(after seq: UInt64, limit: UInt64) -> Bool {
        limit &- seq <= lowWater.load(ordering: .relaxed) && limit < ceiling
    }

    /// Control side: claims the store's space for this SA object and reserves the first
    /// chunk above everything ever reserved there. Returns the highest number reserved
    /// before (the SA starts above it); the limit stays there if the store fails.
    public func activate(_ spec: SASpec) -> UInt64 {
        let claim = store.claim(spec, space)
        let base = min(claim.reserved, ceiling)
        control.withLock { $0.claim = claim }
        published.store(base, ordering: .releasing)
        wanted.store(base == ceiling ? 0 : base &+ 1, ordering: .relaxed)
        _ = extend(now: 0)
        return base
    }

    /// Control side: makes the next chunk durable and publishes it. `now` (monotonic
    /// milliseconds, 0 = unknown) sizes the chunk by how long the last one lasted: under
    /// `chunkLifetime` (two seconds outbound, a quarter of a second inbound) it grows,
    /// outbound by doubling, inbound by the factor that would have made it last that long
    /// (2 to 64 at once; the first timed extension fourfold: a new SA is often met at
    /// once by the traffic of the one it replaces), up to `maximumChunk`; over a minute
    /// it halves.
    @discardableResult
    public func extend(now: UInt64) -> ReservationResult {
        control.withLock { c in
            guard let claim = c.claim else { return .superseded }
            // Asked again while the last extension was being written (a worker asks on
            // every packet until the new limit is published): nobody needs more now,
            // and extending would also misread the SA's rate.
            guard wanted.load(ordering: .relaxed) != 0 else { return .extended }
            let current = published.load(ordering: .relaxed)
            guard current < ceiling else {
                wanted.store(0, ordering: .relaxed)
                return .extended
            }
            if now != 0 {
                if c.lastAt == 0 {
                    if space == .inbound { c.chunk = min(Self.maximumChunk, c.chunk &* 4) }
                } else {
                    let elapsed = now &- c.lastAt, lifetime = Self.chunkLifetime(space)
                    if elapsed < lifetime {
                        // Outbound chunks start large and only double; inbound ones start
                        // small and must catch up with a burst at once.
                        var factor: UInt64 = 2
                        while space == .inbound && factor < 64 && elapsed &* factor < lifetime { factor &*= 2 }
                        c.chunk = min(Self.maximumChunk, c.chunk &* factor)
                    } else if elapsed > 60_000 {
                        c.chunk = max(minimumChunk, c.chunk / 2)
                    }
                }
                lowWater.store(Self.lowWater(c.chunk, space), ordering: .relaxed)
            }
            let want = max(wanted.load(ordering: .relaxed), current &+ 1)
            let (sum, overflow) = want.addingReportingOverflow(c.chunk - 1)
            let target = overflow ? ceiling : min(ceiling, sum)
            guard store.reserve(claim, through: target) else {
                c.failures &+= 1
                return c.failures > 0 && !store.stillHolds(claim) ? .superseded : .failed
            }
            c.lastAt = now
            published.store(target, ordering: .releasing)
            if wanted.load(ordering: .relaxed) <= target { wanted.store(0, ordering: .relaxed) }
            return .extended
        }
    }

    /// Control side, once the workers have stopped: records that nothing above `used`
    /// was used, so the next start (or the next SA with this space) begins right above
    /// it instead of above the whole reservation.
    @discardableResult
    public func settle(at used: UInt64) -> Bool {
        control.withLock { c in
            guard let claim = c.claim, store.settle(claim, at: used) else { return false }
            published.store(min(published.load(ordering: .relaxed), max(used, claim.reserved)), ordering: .releasing)
            return true
        }
    }

    /// Control side, for an SA a key daemon removed: gives its space back to the store
    /// (see `SequenceStore.retire`). The SA can reserve nothing more afterwards.
    @discardableResult
    public func retire() -> Bool {
        control.withLock { c in
            guard let claim = c.claim else { return false }
            return store.retire(claim)
        }
    }

    static func lowWater(_ chunk: UInt64, _ space: SequenceSpace) -> UInt64 {
        space == .outbound ? chunk / 2 : chunk - chunk / 4
    }

    /// Whether a worker is waiting (the reserver retries these).
    public var pending: Bool { wanted.load(ordering: .relaxed) != 0 }
    /// Reservations the store refused.
    public var failures: UInt64 { control.withLock { $0.failures } }
}
