// The allocation counter as encbench uses it: CAllocCounter replaces malloc and
// friends in this executable, so every heap allocation in the process — Swift
// runtime, glibc, OpenSSL — moves the count. `verifyActive` proves that before any
// zero is believed.

import CAllocCounter
import CCrypto
#if canImport(Glibc)
import Glibc
#endif

enum AllocationCounter {
    /// Allocations so far, all threads.
    static var total: UInt64 { encalloc_allocations() }

    /// Allocates once through each library the packet path uses and checks that each
    /// was counted. Returns the names of the libraries whose allocations were missed.
    static func verifyActive() -> [String] {
        var missed: [String] = []
        var before = total
        sink = [Int](repeating: 7, count: 64 + Int(total % 3))   // escapes: a real heap array
        if total == before { missed.append("Swift runtime (Array)") }
        sink = []

        before = total
        rawSink = UnsafeMutableRawPointer(strdup("encbench"))   // escapes, so LLVM keeps it
        if total == before { missed.append("glibc (strdup)") }
        free(rawSink)

        before = total
        let p = CRYPTO_malloc(64, nil, 0)
        if total == before { missed.append("OpenSSL (CRYPTO_malloc)") }
        CRYPTO_free(p, nil, 0)
        return missed
    }

    /// Keeps the probe array alive beyond the optimiser's reach.
    nonisolated(unsafe) static var sink: [Int] = []
    nonisolated(unsafe) static var rawSink: UnsafeMutableRawPointer?
}
