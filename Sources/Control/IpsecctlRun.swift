// encctl's work, in ipsecctl(8)'s order: -F flush, -f load (or -d delete, or -n
// check; a load first reads the running tunables, see IpsecctlConfig), -T tunables,
// -s show, -m monitor. Each step that talks to encd opens its own
// connection (the protocol is one request per connection, monitor aside). Like
// ipsecctl, a step that fails sets the exit status and the next steps still run, except
// that encd being unreachable ends the run at once.
//
// Exit status (Docs/encctl.8.md): 0 success; 1 configuration errors (local or reported
// by encd) or a bad tunable; 2 encd not running or the socket not accessible (or encd
// went away during -m); 3 encd refused a request or answered something unreadable;
// 64 usage.

#if canImport(Glibc)
import Glibc
#endif

public enum EncctlExit: Int32, Sendable {
    case success = 0
    case configuration = 1
    case unreachable = 2
    case daemon = 3
    case usage = 64
}

/// Where encctl writes and how it reaches encd (tests point `connect` at a fake server's
/// socket).
public struct EncctlIO {
    public var out: (String) -> Void
    public var err: (String) -> Void
    public var connect: (String) throws -> ControlClient

    public init(out: @escaping (String) -> Void, err: @escaping (String) -> Void,
                connect: @escaping (String) throws -> ControlClient = { try ControlClient(path: $0) }) {
        self.out = out
        self.err = err
        self.connect = connect
    }

    /// Standard output (flushed after every write, so `-m` works through pipes; a reader
    /// that went away ends the run) and standard error.
    public static var standard: EncctlIO {
        EncctlIO(out: { fputs($0, stdout); if fflush(stdout) != 0 { exit(EncctlExit.daemon.rawValue) } },
                 err: { fputs($0, stderr) })
    }
}

public enum Encctl {
    /// Runs encctl with `arguments` (without the program name); returns the exit status.
    public static func run(_ arguments: [String], io: EncctlIO = .standard) -> Int32 {
        let options: EncctlOptions
        do {
            options = try EncctlOptions.parse(arguments)
        } catch {
            io.err("\(error)\n")
            return EncctlExit.usage.rawValue
        }
        var session = Session(options: options, io: io)
        return session.run().rawValue
    }
}

/// Ends the run with this status (encd unreachable).
private struct Stop: Error { let exit: EncctlExit }

private struct Session {
    let options: EncctlOptions
    let io: EncctlIO
    var status = EncctlExit.success

    init(options: EncctlOptions, io: EncctlIO) {
        self.options = options
        self.io = io
    }

    mutating func run() -> EncctlExit {
        for w in options.warnings { io.err("encctl: \(w)\n") }
        do {
            if options.flush && !options.noAction { try flush() }
            if let file = options.file { try rules(file) }
            for t in options.tunables { try tunable(t) }
            if let target = options.show { try show(target) }
            if options.monitor { try monitor() }
        } catch let s as Stop {
            return s.exit
        } catch {
            io.err("encctl: \(error)\n")
            return .daemon
        }
        return status
    }

    // MARK: Steps

    mutating func flush() throws {
        _ = try call(Request(.flush, what: "all"))
    }

    mutating func rules(_ file: String) throws {
        let source: RulesSource
        let rules: LoadedRules
        do {
            source = try IpsecctlConfig.read(file)
            rules = try IpsecctlConfig.parse(source, defines: options.defines, showKeys: options.showKeys)
        } catch let e as RulesError {
            rulesNotLoaded(e)
            return
        }
        for w in rules.warnings { io.err(w + "\n") }
        // ipsecctl_add_rule prints each rule with -v unless -s was given.
        if options.verbose > 0 && options.show == nil { io.out(rules.listing) }
        if options.noAction { return }
        // Again with the running tunables, so that defaulted SA fields are the daemon's.
        guard let running = try call(Request(.tunable)) else { return }
        let final: LoadedRules
        do {
            final = try IpsecctlConfig.parse(source, defines: options.defines,
                                             tunables: IpsecctlConfig.tunables(running.tunables ?? [:]), showKeys: false)
        } catch let e as RulesError {
            rulesNotLoaded(e)
            return
        }
        _ = try call(Request(options.delete ? .delete : .load, config: final.canonical, configName: source.name))
    }

    mutating func rulesNotLoaded(_ e: RulesError) {
        for l in e.lines { io.err(l + "\n") }
        io.err("encctl: Syntax error in config file: ipsec rules not loaded\n")
        fail(.configuration)
    }

    mutating func tunable(_ t: TunableArgument) throws {
        if let value = t.value {
            do {
                try IpsecctlConfig.checkTunable(t.name, value)
            } catch let e as RulesError {
                for l in e.lines { io.err("encctl: \(l)\n") }
                fail(.configuration)
                return
            }
            if options.noAction { return }
            guard let before = try call(Request(.tunable)) else { return }
            guard let after = try call(Request(.tunable, name: t.name, value: value)) else { return }
            let old = before.tunables?[t.name].map(String.init) ?? "?"
            let new = after.tunables?[t.name].map(String.init) ?? value
            io.out("\(t.name): \(old) -> \(new)\n")
        } else {
            guard let r = try call(Request(.tunable)) else { return }
            let table = r.tunables ?? [:]
            let known = IpsecctlConfig.tunableNames.filter { table[$0] != nil }
            let names = known + table.keys.filter { !known.contains($0) }.sorted()
            let wanted = names.filter { t.name == "all" || $0 == t.name || $0.hasPrefix(t.name + ".") }
            if wanted.isEmpty {
                io.err("encctl: unknown tunable \"\(t.name)\"\n")
                fail(.configuration)
                return
            }
            io.out(wanted.map { "\($0)=\(table[$0]!)\n" }.joined())
        }
    }

    mutating func show(_ target: ShowTarget) throws {
        let request = Request(.show, what: target.rawValue, verbose: options.verbose > 0, showKeys: options.showKeys)
        guard let r = try call(request) else { return }
        let style = ShowStyle(verbose: options.verbose, showKeys: options.showKeys)
        io.out(IpsecctlFormat.show(target, flows: r.flows ?? [], sas: r.sas ?? [], style: style))
    }

    /// Prints each event's line until encd closes the stream or the user interrupts.
    mutating func monitor() throws {
        let client = try connect()
        do {
            try Framing.send(Request(.monitor), to: client.fd)
            while let r = try client.next() {
                try check(r)
                if !r.ok { refused(r); return }
                if let e = r.event { io.out(e.text + "\n") }
            }
        } catch let e as ControlError {
            io.err("encctl: \(e)\n")
            throw Stop(exit: .daemon)
        }
        io.err("encctl: encd closed the connection\n")
        throw Stop(exit: .unreachable)
    }

    // MARK: Talking to encd

    func connect() throws -> ControlClient {
        do {
            return try io.connect(options.socket)
        } catch {
            io.err("encctl: \(error)\n")
            throw Stop(exit: .unreachable)
        }
    }

    /// One request on its own connection. Returns the response when encd accepted the
    /// request; otherwise reports encd's errors, sets the status and returns nil.
    mutating func call(_ request: Request) throws -> Response? {
        let client = try connect()
        let r: Response
        do {
            r = try client.call(request)
        } catch {
            io.err("encctl: \(error)\n")
            fail(.daemon)
            return nil
        }
        try check(r)
        if r.ok { return r }
        refused(r)
        return nil
    }

    /// Prints encd's reasons for refusing a request: its configuration errors, one per
    /// line, then its message.
    mutating func refused(_ r: Response) {
        for l in r.errors ?? [] { io.err(l + "\n") }
        io.err("encctl: \(r.error ?? "encd refused the request")\n")
        fail(r.errors?.isEmpty == false ? .configuration : .daemon)
    }

    /// A reply in another protocol version is not read further.
    func check(_ r: Response) throws {
        guard r.version == ControlProtocol.version else {
            io.err("encctl: encd speaks control protocol version \(r.version), encctl version \(ControlProtocol.version)\n")
            throw Stop(exit: .daemon)
        }
    }

    /// Keeps the first failure's status, as the step that failed first is the cause.
    mutating func fail(_ e: EncctlExit) {
        if status == .success { status = e }
    }
}
