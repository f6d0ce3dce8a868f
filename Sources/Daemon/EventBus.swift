// EventBus: what the daemon tells `encctl -m` clients. Publishers (the control path,
// the once-a-second tick, and the packet path through RateLimitedEvents) never wait:
// each subscriber has a bounded queue, and an event that finds it full is dropped and
// counted (per subscriber, and in total as the monitor_events_dropped counter). The
// subscriber learns how many it missed from an "events-dropped" event once it catches
// up. With no subscriber, publishing is one atomic load.

import Control
import Foundation
import Synchronization

public final class EventBus: @unchecked Sendable {
    /// Events a subscriber may have waiting before new ones are dropped.
    public let queueLimit: Int
    private let subscribers = Mutex<[EventSubscription]>([])
    private let subscriberCount = Atomic<Int>(0)
    private let droppedTotal = Atomic<UInt64>(0)

    public init(queueLimit: Int = 256) { self.queueLimit = max(1, queueLimit) }

    /// Whether anyone listens (the packet path checks this before building an event).
    @inline(__always) public var hasSubscribers: Bool { subscriberCount.load(ordering: .relaxed) > 0 }

    /// Events dropped because a subscriber's queue was full, since start.
    public var dropped: UInt64 { droppedTotal.load(ordering: .relaxed) }

    /// Publishes `kind` with `text`; `details` fills the structured fields (run only
    /// when someone listens).
    public func publish(_ kind: String, _ text: String, _ details: (inout Event) -> Void = { _ in }) {
        guard hasSubscribers else { return }
        var e = Event(kind: kind, time: Date().timeIntervalSince1970, text: text)
        details(&e)
        publish(e)
    }

    public func publish(_ event: Event) {
        guard hasSubscribers else { return }
        let list = subscribers.withLock { $0 }
        for s in list where !s.offer(event) {
            droppedTotal.add(1, ordering: .relaxed)
        }
    }

    public func subscribe() -> EventSubscription {
        let s = EventSubscription(limit: queueLimit)
        subscribers.withLock { $0.append(s) }
        subscriberCount.add(1, ordering: .relaxed)
        return s
    }

    public func unsubscribe(_ s: EventSubscription) {
        let removed = subscribers.withLock { list -> Bool in
            let before = list.count
            list.removeAll { $0 === s }
            return list.count != before
        }
        if removed { subscriberCount.subtract(1, ordering: .relaxed) }
    }
}

/// One subscriber's queue. `offer` never blocks; `next` waits up to a timeout.
public final class EventSubscription: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [Event] = []
    private var missed: UInt64 = 0
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Queues `e`; false (and counted) when the queue is full.
    func offer(_ e: Event) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard queue.count < limit else {
            missed += 1
            return false
        }
        queue.append(e)
        condition.signal()
        return true
    }

    /// Events this subscriber missed since it last caught up.
    public var missedCount: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return missed
    }

    /// The next event, waiting at most `timeout` seconds; nil when none came. After a
    /// drop, an "events-dropped" event comes first once the queue has drained.
    public func next(timeout: TimeInterval) -> Event? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while queue.isEmpty && missed == 0 {
            if !condition.wait(until: deadline) { break }
        }
        if queue.isEmpty && missed > 0 {
            let n = missed
            missed = 0
            return Event(kind: "events-dropped", time: Date().timeIntervalSince1970,
                         text: "\(n) event\(n == 1 ? "" : "s") dropped: this client did not read them in time")
        }
        return queue.isEmpty ? nil : queue.removeFirst()
    }
}
