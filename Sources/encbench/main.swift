// encbench: times the IPsec core's steady-state packet path (ESP and AH, tunnel mode
// IPv4) and proves that it allocates nothing. Exit status: 0 when every row ran
// without a drop and without a heap allocation in its timed loop; 1 otherwise; 2 on
// bad arguments or when the allocation counter is not in effect.
//   swift run -c release encbench [--packets N] [--size 1400] [--runs 5] [--ring 256] [--only TEXT] [--markdown]

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String, status: Int32) -> Never {
    fputs("encbench: \(message)\n", stderr)
    exit(status)
}

let options: Options
do {
    options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    fail("\(error)", status: 2)
}

let missed = AllocationCounter.verifyActive()
guard missed.isEmpty else {
    fail("the allocation counter does not see allocations from \(missed.joined(separator: ", ")); a zero would prove nothing", status: 2)
}
let sequenceBudget = UInt64(options.packets) * UInt64(options.runs) + UInt64(max(2 * options.ring, 20_000) + options.ring + 2)
guard sequenceBudget < UInt64(UInt32.max) else {
    fail("--packets × --runs must stay below 2^32 sequence numbers per SA (no ESN here)", status: 2)
}

let template = makeTemplate(size: options.size)
let report = Report(options: options)
report.header()
var bad = false
let cases = BenchCase.all.filter { c in
    options.only.map { "\(c.protocolName) \(c.operation) \(c.label)".lowercased().contains($0.lowercased()) } ?? true
}
guard !cases.isEmpty else { fail("--only \(options.only ?? ""): no row matches", status: 2) }
for c in cases {
    let loop: PacketLoop
    do {
        loop = c.operation == .encrypt ? try EncryptLoop(spec: c.spec, template: template)
                                       : try DecryptLoop(spec: c.spec, template: template, ring: options.ring)
    } catch {
        fail("setting up \(c.protocolName) \(c.operation) \(c.label): \(error)", status: 1)
    }
    let m = measure(loop, c, options: options)
    report.row(m)
    if m.allocations != 0 || m.failures != 0 { bad = true }
}
report.footer(ok: !bad)
exit(bad ? 1 : 0)
