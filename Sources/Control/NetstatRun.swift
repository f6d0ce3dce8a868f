// What encstat does for a command line, apart from the socket: which requests it
// sends (through `call`, one connection per request), and the text it writes.
//   counters (-s, -p, -w, -o)  → Request(.counters): counters by name (and queues,
//                                if the daemon sends them there)
//   queues (-p enc, -s, -o)    → Request(.status) when the counters reply had none
//   flows (-r)                 → Request(.show, what: "flow")
//   SAs (-a, -o)               → Request(.show, what: "sa", verbose: true)
// Sections print in that order, a blank line between them. A daemon that reports no
// queues at all gets them from `fallbackQueues`, which reads the kernel's /proc file
// in the executable.

import IPsec

public struct NetstatRun {
    public let options: NetstatOptions
    public let call: (Request) throws -> Response
    public var fallbackQueues: () -> [QueueStatus] = { [] }

    public init(_ options: NetstatOptions, call: @escaping (Request) throws -> Response) {
        self.options = options
        self.call = call
    }

    func checked(_ r: Request) throws -> Response {
        let resp = try call(r)
        guard resp.ok else {
            var m = "encd: " + (resp.error ?? "request \(r.command.rawValue) failed")
            for e in resp.errors ?? [] { m += "\n" + e }
            throw ControlError(m)
        }
        return resp
    }

    /// Counters now, and with `queues` encd's NFQUEUE figures.
    public func fetchCounters(queues: Bool = true) throws -> (CounterSnapshot, [QueueStatus]) {
        let r = try checked(Request(.counters))
        guard let c = r.counters else { throw ControlError("encd's reply to counters carries no counters") }
        guard queues else { return (NetstatCounters.snapshot(c), []) }
        let q = try r.queues ?? checked(Request(.status)).queues ?? fallbackQueues()
        return (NetstatCounters.snapshot(c), q)
    }

    public func fetchFlows() throws -> [FlowStatus] { try checked(Request(.show, what: "flow")).flows ?? [] }
    public func fetchSAs() throws -> [SAStatus] { try checked(Request(.show, what: "sa", verbose: true)).sas ?? [] }

    /// The whole output of a one-shot command line (everything but -w).
    public func report() throws -> String {
        let o = options
        if o.prometheus {
            let (snap, queues) = try fetchCounters()
            return PrometheusMetrics.exposition(counters: snap, queues: queues, sas: try fetchSAs()).text
        }
        if o.json {
            var doc = NetstatDocument()
            if o.showsCounters {
                let (snap, queues) = try fetchCounters(queues: o.groups.contains(.enc))
                NetstatJSON.counters(&doc, o.groups, snap, queues: queues, hideZeros: o.hideZeros)
            }
            if o.routes { doc.flows = try fetchFlows() }
            if o.sas { doc.sas = NetstatJSON.withoutKeys(try fetchSAs()) }
            return try NetstatJSON.text(doc)
        }
        var sections: [String] = []
        if o.showsCounters {
            let (snap, queues) = try fetchCounters(queues: o.groups.contains(.enc))
            sections.append(NetstatCounters.report(o.groups, snap, queues: queues, hideZeros: o.hideZeros))
        }
        if o.routes { sections.append(NetstatRoutes.table(try fetchFlows(), numeric: o.numeric)) }
        if o.sas { sections.append(NetstatSAs.table(try fetchSAs(), numeric: o.numeric)) }
        return sections.joined(separator: "\n")
    }

    /// -w: writes a line per interval until -c lines are written (forever without -c);
    /// `sleep` waits the interval, `write` prints (and flushes) a piece of output.
    public func interval(sleep: (Int) -> Void, write: (String) throws -> Void) throws {
        let group = options.group ?? .ipsec
        var previous: IntervalSample?
        var index = 0
        while options.count.map({ index < $0 }) ?? true {
            if index > 0 { sleep(options.wait ?? 1) }
            let current = NetstatInterval.sample(group, try fetchCounters(queues: false).0)
            if options.json {
                try write(try NetstatJSON.line(previous.map { current.since($0) } ?? current))
            } else {
                try write(NetstatInterval.text(index: index, current: current, previous: previous))
            }
            previous = current
            index += 1
        }
    }
}
