// Test support for encctl: status values built from parsed configurations (as encd's
// show handler reports them: text from Config.Printer), a fake encd that answers
// canned Responses on a real Unix socket in a temporary directory through Framing, and
// an EncctlIO that collects what encctl prints.

import Foundation
import Testing
import Config
import IPsec
import EncCore
@testable import Control

/// Test keys (not secrets), each byte pattern easy to spot in output.
enum TestKeys {
    static let auth1 = "0x" + String(repeating: "a1", count: 32)
    static let auth2 = "0x" + String(repeating: "b2", count: 32)
    static let enc1 = "0x" + String(repeating: "c3", count: 16)
    static let enc2 = "0x" + String(repeating: "d4", count: 16)
    static let gcm1 = "0x" + String(repeating: "e5", count: 20)
    static let gcm2 = "0x" + String(repeating: "f6", count: 20)
    static let sha1 = "0x" + String(repeating: "97", count: 20)
    /// The hex digits of every key above, for "no key in the output" checks.
    static let all = [auth1, auth2, enc1, enc2, gcm1, gcm2, sha1].map { String($0.dropFirst(2)) }
}

func parseConfig(_ text: String) throws -> Configuration {
    try ConfigParser.parse(text: text, fileName: "test.conf", readFile: { path in
        throw FileReadError(path: path, message: "No such file or directory")
    })
}

func flowStatus(_ f: FlowSpec) -> FlowStatus {
    FlowStatus(text: Printer.flow(f), proto: "\(f.proto)", direction: "\(f.direction)",
               upperProtocol: f.upperProtocol, source: "\(f.source)", sourcePort: f.sourcePort,
               destination: "\(f.destination)", destinationPort: f.destinationPort,
               peer: f.peer.map { "\($0)" }, type: "\(f.type)")
}

/// An SA as the daemon reports a fresh one; `showKeys` as the request asked.
func saStatus(_ s: SASpec, direction: String, showKeys: Bool, defaultReplayWindow: Int = 0) -> SAStatus {
    // As encd's ControlStatus reports them.
    var flags = [String]()
    if s.replayWindow > 0 { flags.append("replay") }
    if s.extendedSequence { flags.append("esn") }
    if s.encapsulation != nil { flags.append("udpencap") }
    flags.append("\(s.mode)")
    return SAStatus(text: Printer.sa(s, showKeys: showKeys, defaultReplayWindow: defaultReplayWindow),
                    proto: "\(s.proto)", spi: s.spi, source: "\(s.source)", destination: "\(s.destination)",
                    direction: direction, state: "mature", replayWindow: s.replayWindow,
                    sequence: direction == "out" ? 1 : 0, packets: 0, bytes: 0, drops: 0, replayDrops: 0,
                    authFailures: 0, age: 0, sinceFirstUse: nil, flags: flags)
}

/// Collects encctl's output; `connect` goes to `socket` whatever -S says unless nil.
final class Captured: @unchecked Sendable {
    var out = ""
    var err = ""
    func io() -> EncctlIO {
        EncctlIO(out: { self.out += $0 }, err: { self.err += $0 })
    }
}

/// Runs encctl with `args` against the socket at `socket` (added as -S).
func encctl(_ args: [String], socket: String? = nil) -> (status: Int32, out: String, err: String) {
    let c = Captured()
    let full = socket.map { ["-S", $0] + args } ?? args
    let status = Encctl.run(full, io: c.io())
    return (status, c.out, c.err)
}

/// Runs `body` with standard input reading `text` (a pipe), then restores it.
func withStandardInput<T>(_ text: String, _ body: () -> T) -> T {
    var fds: [Int32] = [0, 0]
    precondition(pipe(&fds) == 0)
    let saved = dup(0)
    let bytes = Array(text.utf8)
    precondition(bytes.count < 65536, "the pipe must hold the whole text")
    _ = bytes.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
    close(fds[1])
    dup2(fds[0], 0)
    close(fds[0])
    defer {
        dup2(saved, 0)
        close(saved)
        clearerr(stdin)
    }
    return body()
}

/// A fake encd: accepts connections on a Unix socket in a fresh temporary directory,
/// reads one Request per connection, records it, and writes the Responses `answer`
/// gives for it, then closes the connection.
final class FakeEncd: @unchecked Sendable {
    let directory: String
    let path: String
    private let listener: Int32
    private let lock = NSLock()
    private var recorded: [Request] = []
    private let answer: @Sendable (Request) -> [Response]
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)

    init(answer: @escaping @Sendable (Request) -> [Response]) throws {
        var template = Array("/tmp/encctl-test-XXXXXX".utf8CString)
        guard let d = mkdtemp(&template) else { throw ControlError("mkdtemp failed") }
        directory = String(cString: d)
        path = directory + "/encd.sock"
        self.answer = answer
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in path.utf8.enumerated() { p[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(listener, 8) == 0 else { throw ControlError("bind/listen failed: \(errno)") }
        let t = Thread { [unowned self] in self.serve() }
        thread = t
        t.start()
    }

    /// The requests received so far, in order.
    var requests: [Request] {
        lock.lock(); defer { lock.unlock() }
        return recorded
    }

    private func serve() {
        while true {
            let c = accept(listener, nil, nil)
            if c < 0 { break }
            if let r = try? Framing.receive(Request.self, from: c) {
                lock.lock(); recorded.append(r); lock.unlock()
                for resp in answer(r) { try? Framing.send(resp, to: c) }
            }
            close(c)
        }
        done.signal()
    }

    func stop() {
        // Wake accept(), wait for the loop to end, and only then close: closing first
        // would let another test's socket take this descriptor number while the loop
        // still accepts on it.
        shutdown(listener, Int32(SHUT_RDWR))
        _ = done.wait(timeout: .now() + 5)
        close(listener)
        unlink(path)
        rmdir(directory)
    }
}

extension Response {
    static func show(flows: [FlowStatus], sas: [SAStatus]) -> Response {
        var r = Response()
        r.flows = flows
        r.sas = sas
        return r
    }
}
