// FrameInjector: the IPsec-in worker's writes into enc0, kept until the end of its
// batch and then written with runs of one TCP or UDP flow merged into GSO frames
// (FrameCoalescing, issue #9). It is the PacketDevice the input stage writes to: `write`
// only remembers the buffer (the batch's own, valid until the next receive), `flush`
// writes. With `vnetHeader` off (a device opened without IFF_VNET_HDR, or a fake)
// every frame is written as it came, one write each.
//
// No allocation per packet: the slots and the scratch frame are made once.

#if canImport(Glibc)
import Glibc
#endif
import EncCore
import IPsec
import Kernel

public final class FrameInjector: PacketDevice {
    public let device: PacketDevice
    public let vnetHeader: Bool
    public var name: String { device.name }
    public var fileDescriptor: Int32 { device.fileDescriptor }
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    @exclusivity(unchecked) private var pending: [PacketBuffer]
    @exclusivity(unchecked) private var segments: [MergeableSegment?]
    @exclusivity(unchecked) private var count = 0
    private let scratch: PacketBuffer
    private let idle = PacketBuffer(capacity: 64, headroom: 0)

    public init(device: PacketDevice, capacity: Int, vnetHeader: Bool) {
        self.device = device
        self.vnetHeader = vnetHeader
        pending = [PacketBuffer](repeating: idle, count: max(1, capacity))
        segments = [MergeableSegment?](repeating: nil, count: max(1, capacity))
        scratch = PacketBuffer(capacity: VirtioNetHeader.size + 14 + FrameCoalescing.maxIPLength + 64, headroom: 0)
    }

    public func read(into buffer: PacketBuffer, headroom: Int, tailroom: Int) -> IOResult { .wouldBlock }

    /// Remembers the frame in `buffer` (which must stay untouched until `flush`); when
    /// every slot is taken, the ones kept so far are written first.
    public func write(from buffer: PacketBuffer) -> IOResult {
        if count == pending.count { flush(stats: nil) }
        pending[count] = buffer
        count += 1
        return .done(buffer.count)
    }

    /// Writes what `write` kept, in order; failures are counted in `stats`.
    public func flush(stats: CounterBlock<Counter>?) {
        guard count > 0 else { return }
        defer {
            for i in 0..<count { pending[i] = idle }
            count = 0
        }
        guard vnetHeader else {
            for i in 0..<count { tally(device.write(from: pending[i]), stats) }
            return
        }
        for i in 0..<count { segments[i] = MergeableSegment.parse(UnsafeRawBufferPointer(pending[i].bytes)) }
        var i = 0
        while i < count {
            let end = runEnd(from: i)
            if end - i > 1, let n = mergeRun(i, end) {
                scratch.reset(headroom: 0)
                scratch.setCount(n)
                tally(device.write(from: scratch), stats)
                stats?.add(.encInjectCoalesced, UInt64(end - i))
            } else {
                for j in i..<end { writePlain(pending[j], stats) }
            }
            i = end
        }
    }

    /// The end (exclusive) of the run that starts at `start`: at least start + 1.
    private func runEnd(from start: Int) -> Int {
        guard let first = segments[start] else { return start + 1 }
        let ff = UnsafeRawBufferPointer(pending[start].bytes)
        var last = first, lf = ff
        var length = first.headerLength - 14 + first.payloadLength
        var end = start + 1
        while end < count, let next = segments[end] {
            let nf = UnsafeRawBufferPointer(pending[end].bytes)
            guard length + next.payloadLength <= FrameCoalescing.maxIPLength,
                  last.mayBeFollowed(by: next, nf, in: lf, first: first, ff) else { break }
            length += next.payloadLength
            last = next
            lf = nf
            end += 1
        }
        return end
    }

    private func mergeRun(_ start: Int, _ end: Int) -> Int? {
        let out = UnsafeMutableRawBufferPointer(start: scratch.base, count: scratch.capacity)
        return FrameCoalescing.merge(count: end - start, frame: { UnsafeRawBufferPointer(self.pending[start + $0].bytes) },
                                   segment: { self.segments[start + $0]! }, into: out)
    }

    /// One frame as it came, behind an all-zero virtio_net_hdr.
    private func writePlain(_ buffer: PacketBuffer, _ stats: CounterBlock<Counter>?) {
        guard buffer.prepend(VirtioNetHeader.size) else {
            stats?.add(.espInputProcessing)
            return
        }
        VirtioNetHeader.writePlain(at: buffer.bytes)
        tally(device.write(from: buffer), stats)
    }

    private func tally(_ result: IOResult, _ stats: CounterBlock<Counter>?) {
        switch result {
        case .done: break
        case .wouldBlock, .failed(ENOBUFS): stats?.add(.encWriteFull)
        case .failed: stats?.add(.espInputProcessing)
        }
    }
}
