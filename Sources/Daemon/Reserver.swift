// Reserver: the control side of durable sequence numbers (SequenceReservation). One
// thread; stages of its loop:
//   1. wait until a worker asks (an SA running low, or out of numbers) or a second passed
//   2. for each SA that asked: make its next chunk durable (write, fsync) and publish it
//   3. keep those the store refused (disk full or read-only) for the next round,
//      logging at most once a minute; drop those a newer SA superseded
// Workers never wait for this thread: a packet beyond an SA's published limit is
// dropped and counted while a reservation is outstanding.

import Dispatch
import Foundation
import IPsec
import Synchronization

public final class BackgroundReserver: SequenceReserver, @unchecked Sendable {
    private let waiting = Mutex<[ObjectIdentifier: SequenceReservation]>([:])
    private let wakeup = DispatchSemaphore(value: 0)
    private let running = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let log: Log
    private let store: FileSequenceStore?
    private var lastLog: UInt64 = 0

    public init(log: Log, store: FileSequenceStore?) {
        self.log = log
        self.store = store
    }

    public func wake(_ r: SequenceReservation) {
        waiting.withLock { $0[ObjectIdentifier(r)] = r }
        wakeup.signal()
    }

    public func start() {
        running.store(true, ordering: .relaxed)
        let t = Thread { [self] in
            while running.load(ordering: .relaxed) {
                _ = wakeup.wait(timeout: .now() + 1)
                serve()
            }
            finished.signal()
        }
        t.name = "encd-reserver"
        t.start()
    }

    public func stop() {
        guard running.exchange(false, ordering: .relaxed) else { return }
        wakeup.signal()
        finished.wait()
    }

    /// One round: every waiting reservation extended, or kept for the next round.
    func serve() {
        let now = CoarseClock.monotonicSeconds()
        let nowMillis = CoarseClock.monotonicMilliseconds()
        let batch = waiting.withLock { w -> [SequenceReservation] in
            let b = Array(w.values)
            w = [:]
            return b
        }
        var failed = 0
        for r in batch {
            switch r.extend(now: nowMillis) {
            case .extended, .superseded: break
            case .failed:
                failed += 1
                waiting.withLock { $0[ObjectIdentifier(r)] = r }
            }
        }
        if failed > 0 && now >= lastLog + 60 {
            lastLog = now
            let why = store.map { e in e.lastWriteError == 0 ? "" : ": \(String(cString: strerror(e.lastWriteError)))" } ?? ""
            log.error("cannot record sequence numbers in \(store?.path ?? "the state directory")\(why); \(failed) SA\(failed == 1 ? "" : "s") send or accept nothing beyond what is recorded until it can (no number is ever used twice)")
        }
    }
}
