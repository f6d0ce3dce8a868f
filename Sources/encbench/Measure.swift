// Timing and allocation accounting around a PacketLoop: warm up, then `runs` timed
// runs of `packets` packets on CLOCK_MONOTONIC; the allocation counter is read right
// before and right after each timed run, so only the steady-state loop is counted.

#if canImport(Glibc)
import Glibc
#endif

struct Measurement {
    let protocolName: String
    let operation: String
    let label: String
    let size: Int
    /// Median over the runs.
    let nanosecondsPerPacket: Double
    /// Heap allocations during all timed runs together.
    let allocations: UInt64
    /// Packets that did not come out as expected (dropped) during timed runs.
    let failures: Int

    var packetsPerSecond: Double { 1e9 / nanosecondsPerPacket }
    /// Inner packet bytes per second, in Gbit/s.
    var gigabitsPerSecond: Double { packetsPerSecond * Double(size) * 8 / 1e9 }
}

@inline(__always) func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func measure(_ loop: PacketLoop, _ c: BenchCase, options: Options) -> Measurement {
    let warmup = max(2 * options.ring, min(options.packets, 20_000))
    var failures = loop.run(warmup)
    var perPacket: [Double] = []
    perPacket.reserveCapacity(options.runs)
    var allocations: UInt64 = 0
    for _ in 0..<options.runs {
        let a0 = AllocationCounter.total
        let t0 = monotonicNanoseconds()
        failures += loop.run(options.packets)
        let t1 = monotonicNanoseconds()
        let a1 = AllocationCounter.total
        allocations += a1 - a0
        perPacket.append(Double(t1 - t0) / Double(options.packets))
    }
    perPacket.sort()
    let n = perPacket.count
    let median = n % 2 == 1 ? perPacket[n / 2] : (perPacket[n / 2 - 1] + perPacket[n / 2]) / 2
    return Measurement(protocolName: c.protocolName, operation: c.operation.rawValue, label: c.label,
                       size: options.size, nanosecondsPerPacket: median,
                       allocations: allocations, failures: failures)
}
