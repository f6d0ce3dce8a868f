// No heap allocation per packet in the worker loops (issue #9): the real Worker loop
// (receive a batch, run the stage on each packet, set its verdict, the after-batch
// step, flush the verdicts) on its own thread, for [X], IPsec out and IPsec in (with
// the frame injector merging TCP runs), counted by CAllocCounter on the worker's
// thread. The queue, the sender and the device are fakes that allocate nothing; the
// kernel's side of them (recvmmsg, send, write) allocates nothing in this process.

import CAllocCounter
import EncCore
import Foundation
import IPsec
import Synchronization
import Testing
@testable import Daemon
@testable import Kernel

/// A queue that hands out the same prepared packets again and again, `wrap` is
/// called (on the worker's thread) each time it starts over.
final class ReplayQueue: PacketQueue, @unchecked Sendable {
    let number: UInt16 = 0
    var fileDescriptor: Int32 { -1 }
    var counters = QueueCounters()
    private let packets: [[UInt8]]
    private let mark: UInt32
    private var next = 0
    private var id: UInt32 = 0
    var wrap: () -> Void = {}

    init(_ packets: [[UInt8]], mark: UInt32 = 0) {
        self.packets = packets
        self.mark = mark
    }

    func receive(into batch: QueueBatch, wait: Bool) -> IOResult {
        for i in 0..<batch.capacity {
            if next == packets.count { next = 0; wrap() }
            _ = batch.buffers[i].load(packets[next], headroom: batch.headroom)
            next += 1
            id &+= 1
            var meta = QueuedPacket()
            meta.id = id
            meta.mark = mark
            meta.inInterface = 7
            batch[i] = meta
        }
        batch.count = batch.capacity
        return .done(batch.capacity)
    }
    func setVerdict(_ verdict: QueueVerdict, id: UInt32, payload: PacketBuffer?) -> IOResult { .done(0) }
    func flushVerdicts() -> IOResult { .done(0) }
}

/// A device whose reads hand out the same prepared frames again and again (the
/// ipsec-out worker reads enc0 through a DeviceQueue).
final class ReplayDevice: PacketDevice, @unchecked Sendable {
    let name = "enc0"
    var fileDescriptor: Int32 { -1 }
    private let frames: [[UInt8]]
    private var next = 0
    init(_ frames: [[UInt8]]) { self.frames = frames }
    func read(into buffer: PacketBuffer, headroom: Int, tailroom: Int) -> IOResult {
        if next == frames.count { next = 0 }
        _ = buffer.load(frames[next], headroom: headroom)
        next += 1
        return .done(buffer.count)
    }
    func write(from buffer: PacketBuffer) -> IOResult { .failed(EBADF) }
}

/// Counts what is sent or written, keeps nothing.
final class CountingSink: PacketSender, PacketDevice, @unchecked Sendable {
    let name = "enc0"
    var fileDescriptor: Int32 { -1 }
    var packets = 0, bytes = 0
    func send(_ buffer: PacketBuffer) -> IOResult { packets += 1; bytes += buffer.count; return .done(buffer.count) }
    func write(from buffer: PacketBuffer) -> IOResult { packets += 1; bytes += buffer.count; return .done(buffer.count) }
    func read(into buffer: PacketBuffer, headroom: Int, tailroom: Int) -> IOResult { .wouldBlock }
}

/// Reads the worker thread's allocation count after `warm` packets and again `count`
/// packets later.
final class AllocationProbe: @unchecked Sendable {
    let warm: Int, count: Int
    private var seen = 0
    private(set) var before: UInt64 = 0, after: UInt64 = 0
    let done = DispatchSemaphore(value: 0)
    init(warm: Int, count: Int) { self.warm = warm; self.count = count }
    @inline(__always) func packet() {
        seen += 1
        if seen == warm { before = encalloc_thread_allocations() }
        if seen == warm + count { after = encalloc_thread_allocations(); done.signal() }
    }
}

@Suite(.serialized) struct WorkerAllocationTests {
    static let warm = 2_000, counted = 20_000

    /// Runs `handle` in a real Worker on `queue` and returns the allocations it made on
    /// its thread over `counted` packets after `warm`.
    static func allocations(_ queue: PacketQueue, afterBatch: ((CounterBlock<Counter>) -> Void)? = nil,
                            _ handle: @escaping (PacketBuffer, QueuedPacket, CounterBlock<Counter>) -> QueueVerdict) -> UInt64? {
        let probe = AllocationProbe(warm: warm, count: counted)
        let worker = Worker(name: "alloc", queue: queue, log: Log(level: .error), afterBatch: afterBatch) { b, m, s in
            let v = handle(b, m, s)
            probe.packet()
            return v
        }
        worker.start()
        let finished = probe.done.wait(timeout: .now() + 60) == .success
        worker.stop()
        return finished ? probe.after - probe.before : nil
    }

    static func segments(count: Int) -> [[UInt8]] {
        (0..<count).map { i in
            PacketBuilder.tcp(source: IPAddress("198.18.1.10")!, destination: IPAddress("198.18.2.20")!, sourcePort: 40_000,
                              destinationPort: 5201, sequence: 1_000 + UInt32(i * 1_300), acknowledgment: 7,
                              payload: [UInt8](repeating: UInt8(i & 0xff), count: 1_300), identification: UInt16(i), dontFragment: true)
        }
    }

    @Test func spdWorkerAllocatesNothingPerPacket() throws {
        let gw1 = try Gateway(siteConf(), local: ["192.0.2.1"])
        let n = try #require(Self.allocations(ReplayQueue(Self.segments(count: 64)), { b, m, s in
            SPDStage.handle(b, meta: m, context: gw1.context, stats: s)
        }))
        #expect(n == 0, "\(n) allocations in \(Self.counted) packets at [X]")
    }

    @Test func outputWorkerAllocatesNothingPerPacket() throws {
        let gw1 = try Gateway(siteConf(), local: ["192.0.2.1"])
        guard case .acceptWithMark(let mark) = gw1.spd(Self.segments(count: 1)[0]) else { Issue.record("no protect"); return }
        let sink = CountingSink(), scratch = PacketBuffer()
        // Frames as enc0 gives them: single packets, and a TCP super-packet of 20
        // segments (GSO) that the stage cuts up.
        var frames = Self.segments(count: 63).map { EncFrame.make($0, mark: mark) }
        let merged = FrameInjectorTests.inject(Frames.run(count: 20, size: 1300)).0[0]
        frames.append(EncFrame.make(Array(merged.dropFirst(24)), mark: mark, vnet: Array(merged.prefix(10))))
        let queue = DeviceQueue(device: ReplayDevice(frames), number: 1)
        let n = try #require(Self.allocations(queue, { b, _, s in
            OutputStage.handleFrame(b, sender: sink, scratch: scratch, context: gw1.context, stats: s)
        }))
        #expect(n == 0, "\(n) allocations in \(Self.counted) frames out")
        #expect(sink.packets >= Self.warm + Self.counted)
    }

    @Test func inputWorkerWithTheInjectorAllocatesNothingPerPacket() throws {
        let gw1 = try Gateway(siteConf(), local: ["192.0.2.1"])
        let gw2 = try Gateway(siteConf2(), local: ["192.0.2.2"])
        guard case .acceptWithMark(let mark) = gw1.spd(Self.segments(count: 1)[0]) else { Issue.record("no protect"); return }
        let wire = try Self.segments(count: 256).map { try #require(gw1.output($0, mark: mark)) }
        let inbound = try #require(gw2.box.value.sad.all.first { $0.spec.destination == IPAddress("192.0.2.2")! })
        let queue = ReplayQueue(wire)
        queue.wrap = { inbound.replay.reset(top: 0) }       // every round of the ring is new to the window
        let sink = CountingSink()
        let injector = FrameInjector(device: sink, capacity: Worker.defaultBatchSize, vnetHeader: true)
        let stats = CounterBlock<Counter>()
        let n = try #require(Self.allocations(queue, afterBatch: { injector.flush(stats: $0) }, { b, m, s in
            InputStage.handle(b, meta: m, device: injector, context: gw2.context, stats: s)
        }))
        #expect(n == 0, "\(n) allocations in \(Self.counted) packets in")
        // The packets did go through, merged (32 segments of one flow per batch).
        #expect(sink.packets > 0 && sink.bytes > Self.counted * 1_300)
        _ = stats
    }
}
