// DeviceQueue: the frames routing sends into a TUN/TAP device, read in batches and
// handed to a Worker as if they came from a queue (issue #9: encd reads the outbound
// side from enc0 itself instead of an NFQUEUE). Stages of `receive`:
//   1. with `wait`, poll the descriptor for at most a second (so the worker's loop,
//      its heartbeat and `stop()` keep moving when nothing is sent)
//   2. read frames, one read(2) each, until the batch is full or none is left
// There is no verdict: a frame read is the device's to drop, so `setVerdict` and
// `flushVerdicts` do nothing. Frames the device could not hold while encd was slow are
// counted by the kernel as the interface's transmit drops. Allocates nothing.

#if canImport(Glibc)
import Glibc
#endif
import EncCore

public final class DeviceQueue: PacketQueue {
    public let number: UInt16
    private let device: PacketDevice
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    @exclusivity(unchecked) private var pollSet = pollfd()
    /// Written by this queue's worker, read by the control thread.
    let cells = QueueCounterCells()
    public var counters: QueueCounters { cells.snapshot }
    /// How long a waiting receive polls, in milliseconds.
    private let waitMilliseconds: Int32

    /// `number` is only a label (encstat names the stage by it).
    public init(device: PacketDevice, number: UInt16, waitMilliseconds: Int32 = 1000) {
        self.device = device
        self.number = number
        self.waitMilliseconds = waitMilliseconds
        pollSet.fd = device.fileDescriptor
        pollSet.events = Int16(POLLIN)
    }

    public var fileDescriptor: Int32 { device.fileDescriptor }

    public func receive(into batch: QueueBatch, wait: Bool) -> IOResult {
        batch.count = 0
        if wait && pollSet.fd >= 0 {
            pollSet.revents = 0
            let ready = Syscall.retry { poll(&pollSet, 1, waitMilliseconds) }
            switch ready {
            case .done(0), .wouldBlock: return .wouldBlock
            case .failed(let e): return .failed(e)
            case .done: break
            }
        }
        var n = 0
        while n < batch.capacity {
            let result = device.read(into: batch.buffers[n], headroom: batch.headroom, tailroom: 0)
            guard case .done = result else {
                if n == 0, case .failed(let e) = result { return .failed(e) }
                break
            }
            batch[n] = QueuedPacket()
            n += 1
        }
        batch.count = n
        cells.add(.received, UInt64(n))
        return n == 0 ? .wouldBlock : .done(n)
    }

    public func setVerdict(_ verdict: QueueVerdict, id: UInt32, payload: PacketBuffer?) -> IOResult { .done(0) }
    public func flushVerdicts() -> IOResult { .done(0) }
}
