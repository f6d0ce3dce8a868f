// encstat against a stand-in daemon: a Unix socket in a temporary directory that
// answers each connection's request through Framing with canned replies, so the
// client side (connect, framing, one request per connection, errors) runs for real.

import Control
import Foundation
import Testing

final class EncstatFakeServer: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var seen: [Request] = []
    private let reply: @Sendable (Request) -> Response
    private let done = DispatchSemaphore(value: 0)

    init(reply: @escaping @Sendable (Request) -> Response) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("encstat-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        path = dir.appendingPathComponent("encd.sock").path
        self.reply = reply
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(fd, 8) == 0 else { throw ControlError("fake server: bind/listen \(errno)") }
        let t = Thread { [self] in serve() }
        t.start()
    }

    var requests: [Request] { lock.lock(); defer { lock.unlock() }; return seen }

    private func serve() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { break }
            if let r = try? Framing.receive(Request.self, from: c) {
                lock.lock(); seen.append(r); lock.unlock()
                try? Framing.send(reply(r), to: c)
            }
            close(c)
        }
        done.signal()
    }

    func stop() {
        // Wake accept(), wait for the loop to end, then close (see EncctlFakeServer.stop).
        shutdown(fd, Int32(SHUT_RDWR))
        _ = done.wait(timeout: .now() + 5)
        close(fd)
        try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
    }
}

@Suite struct EncstatFakeServerTests {
    static func answer(_ r: Request) -> Response {
        switch r.command {
        case .counters: return EncstatFixtures.busyCounters
        case .show: return r.what == "flow" ? EncstatFixtures.flows : EncstatFixtures.sas
        default: return Response.failure("unknown command")
        }
    }

    @Test func countersFlowsAndSAsComeOverTheSocketOneRequestPerConnection() throws {
        let server = try EncstatFakeServer { EncstatFakeServerTests.answer($0) }
        defer { server.stop() }
        let options = try NetstatOptions.parse(["-s", "-p", "esp", "-r", "-a", "-S", server.path])
        let out = try NetstatRun(options) { try ControlClient(path: options.socket).call($0) }.report()
        #expect(out.hasPrefix(EncstatCountersTests.busyESP + "\nEncap:\n"))
        #expect(out.hasSuffix(NetstatSAsTests.table))
        #expect(server.requests.map(\.command) == [.counters, .show, .show])
        #expect(server.requests.allSatisfy { $0.version == ControlProtocol.version && $0.showKeys == nil })
    }

    @Test func intervalsAskOncePerLine() throws {
        let server = try EncstatFakeServer { EncstatFakeServerTests.answer($0) }
        defer { server.stop() }
        let options = try NetstatOptions.parse(["-w", "1", "-c", "3", "-S", server.path])
        var out = ""
        try NetstatRun(options) { try ControlClient(path: options.socket).call($0) }
            .interval(sleep: { _ in }, write: { out += $0 })
        #expect(out.split(separator: "\n").count == 4)
        #expect(out.hasSuffix("           0            0          0            0        0        0\n"))
        #expect(server.requests.count == 3)
    }

    @Test func anErrorReplyIsOneClearLine() throws {
        let server = try EncstatFakeServer { _ in Response.failure("counters are not available yet") }
        defer { server.stop() }
        let options = try NetstatOptions.parse(["-S", server.path])
        #expect(throws: ControlError.self) { try NetstatRun(options) { try ControlClient(path: options.socket).call($0) }.report() }
        do {
            _ = try NetstatRun(options) { try ControlClient(path: options.socket).call($0) }.report()
        } catch {
            #expect("\(error)" == "encd: counters are not available yet")
        }
    }

    @Test func noDaemonSaysSo() throws {
        let options = try NetstatOptions.parse(["-S", "/tmp/encstat-no-such-dir-\(getpid())/encd.sock"])
        do {
            _ = try NetstatRun(options) { try ControlClient(path: options.socket).call($0) }.report()
            Issue.record("no error")
        } catch {
            #expect("\(error)".hasPrefix("encd is not running"))
        }
    }
}

@Suite struct FramingDeadlineTests {
    /// A request trickled a byte at a time must arrive whole within the time allowed:
    /// a timeout per read alone would restart with every byte.
    @Test func aTrickledRequestTimesOutAsAWhole() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        // The writer owns its end and closes it itself when the reader's end is gone:
        // closing it here while the thread still writes could hit a reused descriptor.
        defer { close(fds[0]) }
        let writerEnd = fds[1]
        let writer = Thread {
            defer { close(writerEnd) }
            let frame: [UInt8] = [0, 0, 0, 40] + Array("{\"version\":1,\"command\":\"status\"}".utf8)
            for b in frame {
                var byte = b
                if send(writerEnd, &byte, 1, Int32(MSG_NOSIGNAL)) != 1 { return }
                usleep(300_000)
            }
        }
        writer.start()
        let start = Date()
        #expect(throws: ControlError.self) { _ = try Framing.receive(Request.self, from: fds[0], within: 1) }
        let took = Date().timeIntervalSince(start)
        #expect(took >= 0.9 && took < 3, "took \(took) s")
    }
}
