// ControlServer: encd's control socket (protocol in Control/Protocol.swift and
// Docs/control-protocol.md). Stages:
//   1. accept thread: waits for a connection (polling, so `stop` is prompt), checks
//      the peer with SO_PEERCRED (uid 0 or encd's own uid), and hands the connection
//      to a thread of its own, at most `maxConnections` at a time
//   2. connection thread: reads one request with a receive timeout (a client that
//      sends nothing cannot hold a thread for long), answers it, closes; `monitor`
//      instead streams events until the client closes or stops reading. A refused
//      peer's request is read (at most the frame limit) but not looked at, and answered "permission denied".
// Nothing a client sends — too large, malformed, unknown version or command — does
// more than earn it an error reply. Refused peers are logged at most once per
// `refusalLogInterval` seconds, with a count.

import Control
import Foundation
import Kernel
import Synchronization

public final class ControlServer: @unchecked Sendable {
    public let path: String
    private let plane: ControlPlane
    private let log: Log
    private let allowedUIDs: Set<uid_t>
    public let maxConnections: Int
    /// Seconds a client has to send its request (SO_RCVTIMEO); also the send timeout.
    public let requestTimeout: Int
    public let refusalLogInterval: UInt64 = 10
    private var listenFD: Int32 = -1
    private let running = Atomic<Bool>(false)
    private let active = Atomic<Int>(0)
    private let stopped = DispatchSemaphore(value: 0)
    private let refusals = Mutex<(last: UInt64, held: UInt64)>((0, 0))

    public init(path: String, plane: ControlPlane, log: Log, allowedUIDs: Set<uid_t> = [0, getuid()],
                maxConnections: Int = 32, requestTimeout: Int = 2) {
        self.path = path
        self.plane = plane
        self.log = log
        self.allowedUIDs = allowedUIDs
        self.maxConnections = maxConnections
        self.requestTimeout = requestTimeout
    }

    /// Binds the socket (mode 0600, a stale socket at `path` replaced) and starts
    /// accepting. Throws when the path is taken by something that is not a socket.
    public func start() throws {
        // A client that goes away mid-reply must cost an EPIPE, not the process.
        signal(SIGPIPE, SIG_IGN)
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw DaemonError("\(path) exists and is not a socket; remove it or choose another path with -S")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DaemonError("control socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            throw DaemonError("control socket path too long (\(bytes.count) bytes): \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        // The socket file is created 0600 (no window in which others could connect).
        let oldMask = umask(0o177)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(oldMask)
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw DaemonError("cannot bind control socket \(path): \(String(cString: strerror(e)))")
        }
        chmod(path, 0o600)
        guard listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            unlink(path)
            throw DaemonError("cannot listen on \(path): \(String(cString: strerror(e)))")
        }
        listenFD = fd
        running.store(true, ordering: .relaxed)
        let t = Thread { [self] in
            acceptLoop()
            stopped.signal()
        }
        t.name = "encd-control"
        t.start()
    }

    /// Stops accepting, removes the socket, and waits for the accept thread and (up to
    /// a few seconds) for open connections: requests time out, monitors notice the stop
    /// within half a second.
    public func stop() {
        guard running.exchange(false, ordering: .relaxed) else { return }
        stopped.wait()
        close(listenFD)
        listenFD = -1
        unlink(path)
        for _ in 0..<(20 * (requestTimeout + 3)) where active.load(ordering: .relaxed) > 0 { usleep(50_000) }
    }

    private func acceptLoop() {
        while running.load(ordering: .relaxed) {
            var p = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, 250)
            if n <= 0 { continue }
            let c = accept(listenFD, nil, nil)
            if c < 0 { continue }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            setTimeouts(c)
            let peer = try? PeerCredentials.of(c)
            let allowed = peer.map { allowedUIDs.contains($0.uid) } ?? false
            guard active.add(1, ordering: .relaxed).newValue <= maxConnections else {
                active.subtract(1, ordering: .relaxed)
                try? Framing.send(Response.failure("encd is busy: \(maxConnections) control connections open; try again"), to: c)
                close(c)
                continue
            }
            let t = Thread { [self] in
                if allowed { serve(c) } else { refuse(c, peer) }
                close(c)
                active.subtract(1, ordering: .relaxed)
            }
            t.name = "encd-control-conn"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    private func setTimeouts(_ fd: Int32) {
        var tv = timeval(tv_sec: requestTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var stv = timeval(tv_sec: max(requestTimeout, 5), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Takes the request (so the client can read the answer rather than meet a
    /// closed socket) without looking at it, and answers "permission denied".
    private func refuse(_ fd: Int32, _ peer: PeerCredentials?) {
        _ = try? Framing.receive(Discarded.self, from: fd, within: requestTimeout)
        try? Framing.send(Response.failure("permission denied"), to: fd)
        let now = plane.clock.now + 1
        let held: UInt64? = refusals.withLock { r in
            if r.last != 0 && now < r.last + refusalLogInterval {
                r.held += 1
                return nil
            }
            let h = r.held
            r = (now, 0)
            return h
        }
        if let held {
            let who = peer.map { "uid \($0.uid) pid \($0.pid)" } ?? "an unidentified peer"
            log.warning("control socket: refused \(who): permission denied\(held > 0 ? " (and \(held) more since the last line)" : "")")
        }
    }

    /// Reads one request and answers it (or streams events for `monitor`).
    private func serve(_ fd: Int32) {
        let incoming: IncomingRequest?
        do {
            incoming = try Framing.receive(IncomingRequest.self, from: fd, within: requestTimeout)
        } catch let e as ControlError {
            let timedOut = e.timedOut || e.description.contains(String(cString: strerror(EAGAIN)))
            try? Framing.send(Response.failure(timedOut ? "no request within \(requestTimeout) seconds" : e.description), to: fd)
            return
        } catch {
            try? Framing.send(Response.failure("\(error)"), to: fd)
            return
        }
        guard let incoming else { return }   // connected and closed: nothing to answer
        let request: Request
        switch incoming.check() {
        case .failure(let f):
            try? Framing.send(Response.failure(f.message), to: fd)
            return
        case .success(let r):
            request = r
        }
        if request.command == .monitor {
            monitor(fd)
            return
        }
        try? Framing.send(plane.respond(to: request), to: fd)
    }

    /// Streams events until the client closes, stops reading (send timeout), or the
    /// server stops. The first response (no event) says the subscription is active.
    private func monitor(_ fd: Int32) {
        let sub = plane.bus.subscribe()
        defer { plane.bus.unsubscribe(sub) }
        var ack = Response()
        ack.status = ["monitor": "subscribed"]
        guard (try? Framing.send(ack, to: fd)) != nil else { return }
        while running.load(ordering: .relaxed) {
            if let e = sub.next(timeout: 0.5) {
                var r = Response()
                r.event = e
                guard (try? Framing.send(r, to: fd)) != nil else { return }
            }
            if peerClosed(fd) { return }
        }
    }

    /// Whether the client has closed its end (a monitor client sends nothing).
    private func peerClosed(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        if p.revents & Int16(POLLHUP | POLLERR) != 0 { return true }
        var b: UInt8 = 0
        return recv(fd, &b, 1, Int32(MSG_DONTWAIT)) <= 0
    }
}

/// A request as received: decoded leniently first, so an unknown version or command
/// gets its own error rather than "malformed".
struct IncomingRequest: Decodable {
    var version: Int?
    var command: String?
    var request: Request?
    var problem: String?

    enum Keys: String, CodingKey { case version, command }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        version = try? c.decode(Int.self, forKey: .version)
        command = try? c.decode(String.self, forKey: .command)
        do {
            request = try Request(from: decoder)
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            problem = "field \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
        } catch let DecodingError.keyNotFound(key, _) {
            problem = "field \"\(key.stringValue)\" missing"
        } catch {
            problem = "\(error)"
        }
    }

    func check() -> Result<Request, ControlFailure> {
        guard let version else { return .failure(ControlFailure("malformed request: no \"version\"")) }
        guard version == ControlProtocol.version else {
            return .failure(ControlFailure("unsupported protocol version \(version) (encd speaks \(ControlProtocol.version))"))
        }
        guard let command else { return .failure(ControlFailure("malformed request: no \"command\"")) }
        guard Command(rawValue: command) != nil else {
            return .failure(ControlFailure("unknown command \"\(command)\": expected one of "
                + Command.allCases.map(\.rawValue).joined(separator: ", ")))
        }
        guard let request else { return .failure(ControlFailure("malformed request: \(problem ?? "undecodable")")) }
        return .success(request)
    }
}

/// A message read only to be thrown away.
private struct Discarded: Decodable {
    init(from decoder: Decoder) throws {}
}
