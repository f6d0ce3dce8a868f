// Helpers for the interop tests: run a tool we did not write (scapy via
// Interop/scapy_peer.py, tshark) on packets encd made or will read. Tests only: keys
// leave the SecretKey through hexForDisplay here and nowhere else.

import Crypto
import EncCore
import Foundation
import Testing
@testable import IPsec

/// An SA as scapy_peer.py reads it (the script's docstring is the schema).
struct PeerSA: Encodable {
    let proto: String
    let mode: String
    let spi: UInt32
    let src: String
    let dst: String
    let enc: String?
    let enc_key: String?
    let auth: String?
    let auth_key: String?
    let esn: Bool
    /// [source port, destination port] of RFC 3948 UDP encapsulation.
    let udp: [UInt16]?

    init(_ spec: SASpec) {
        proto = spec.proto.description
        mode = spec.mode.description
        spi = spec.spi
        src = spec.source.description
        dst = spec.destination.description
        enc = spec.proto == .esp ? (spec.encryption ?? EncryptionAlgorithm.defaultESP).name : nil
        enc_key = spec.encryptionKey?.hexForDisplay
        auth = spec.integrity?.name
        auth_key = spec.integrityKey?.hexForDisplay
        esn = spec.extendedSequence
        udp = spec.encapsulation.map { [$0.port, $0.peerPort ?? $0.port] }
    }
}

struct PeerPacket: Encodable {
    let hex: String
    /// The full sequence number: scapy takes the ESN high half from here.
    let seq: UInt64
}

struct PeerJob: Encodable {
    enum Op: String, Encodable { case decrypt, encrypt }
    let sa: PeerSA
    let op: Op
    let packets: [PeerPacket]
}

/// scapy's verdict on one packet: the bytes it produced, or why it refused.
struct PeerResult: Decodable {
    let hex: String?
    let error: String?

    var bytes: [UInt8]? { hex.flatMap(Hex.decode) }
}

private struct PeerRequest: Encodable { let jobs: [PeerJob] }
private struct PeerAnswer: Decodable {
    let scapy: String
    let results: [[PeerResult]]
}

struct ToolError: Error, CustomStringConvertible {
    let description: String
}

/// The output of a finished external program.
struct ToolRun {
    let status: Int32
    let stdout: Data
    let stderr: String
}

enum Tool {
    static let installHint = "run scripts/install-deps.sh (as root) to install tshark, python3 and scapy"

    /// Finds `name` on PATH, or fails with the install hint.
    static func locate(_ name: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let url = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw ToolError(description: "\(name) not found on PATH; \(installHint)")
    }

    /// Runs `executable` with `input` on stdin. stdin and stdout go through files, so
    /// neither side can block on a full pipe.
    static func run(_ executable: URL, _ arguments: [String], input: Data = Data(),
                    environment: [String: String]? = nil) throws -> ToolRun {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let inURL = dir.appendingPathComponent("stdin"), outURL = dir.appendingPathComponent("stdout"),
            errURL = dir.appendingPathComponent("stderr")
        try input.write(to: inURL)
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let stdin = try FileHandle(forReadingFrom: inURL)
        let stdout = try FileHandle(forWritingTo: outURL), stderr = try FileHandle(forWritingTo: errURL)
        defer { try? stdin.close(); try? stdout.close(); try? stderr.close() }
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        if let environment { p.environment = environment }
        p.standardInput = stdin
        p.standardOutput = stdout
        p.standardError = stderr
        try p.run()
        p.waitUntilExit()
        return ToolRun(status: p.terminationStatus, stdout: try Data(contentsOf: outURL),
                       stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    /// A fresh private directory under the system's temporary directory.
    static func scratchDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("encd-interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

enum ScapyPeer {
    static var script: URL {
        get throws {
            guard let url = Bundle.module.url(forResource: "scapy_peer", withExtension: "py", subdirectory: "Interop") else {
                throw ToolError(description: "Interop/scapy_peer.py missing from the IPsecTests resources")
            }
            return url
        }
    }

    /// Runs the jobs in one python process; one result list per job, in order.
    static func run(_ jobs: [PeerJob]) throws -> [[PeerResult]] {
        let python = try Tool.locate("python3")
        let input = try JSONEncoder().encode(PeerRequest(jobs: jobs))
        let r = try Tool.run(python, [try script.path], input: input)
        if r.stderr.contains("No module named 'scapy'") {
            throw ToolError(description: "python3 has no scapy; \(Tool.installHint)")
        }
        guard r.status == 0 else {
            throw ToolError(description: "scapy_peer.py exited \(r.status): \(r.stderr)")
        }
        let answer = try JSONDecoder().decode(PeerAnswer.self, from: r.stdout)
        guard answer.results.count == jobs.count,
              zip(answer.results, jobs).allSatisfy({ $0.count == $1.packets.count }) else {
            throw ToolError(description: "scapy_peer.py answered \(answer.results.map(\.count)) for \(jobs.map(\.packets.count))")
        }
        return answer.results
    }
}

extension SAPair {
    /// Protects each packet in turn, returning the wire bytes with the sequence number
    /// each was sent under.
    func protectAll(_ packets: [[UInt8]], _ comment: Comment) throws -> [(wire: [UInt8], seq: UInt64)] {
        try packets.map { packet in
            let seq = out.nextSequence
            let wire = try #require(protect(packet).value, comment)
            return (wire, seq)
        }
    }
}
