// Helpers: parse text with an in-memory file system, collect errors, compare SAs.

import Testing
import Crypto
import EncCore
import IPsec
@testable import Config

let confName = "/etc/encd/ipsec.conf"

/// Test keys (not secrets): 256-bit HMAC-SHA2-256 keys and 128-bit AES keys.
let authK1 = "0x" + String(repeating: "a1", count: 32)
let authK2 = "0x" + String(repeating: "b2", count: 32)
let encK1 = "0x" + String(repeating: "c3", count: 16)
let encK2 = "0x" + String(repeating: "d4", count: 16)

func memoryReader(_ files: [String: String]) -> ConfigParser.FileReader {
    { path in
        guard let t = files[path] else { throw FileReadError(path: path, message: "No such file or directory") }
        return t
    }
}

func parse(_ text: String, files: [String: String] = [:], defines: [String: String] = [:]) throws -> Configuration {
    try ConfigParser.parse(text: text, fileName: confName, defines: defines, readFile: memoryReader(files))
}

/// The errors a text produces; records an issue when it parses.
func errors(_ text: String, files: [String: String] = [:], defines: [String: String] = [:],
            sourceLocation: Testing.SourceLocation = #_sourceLocation) -> [ConfigError] {
    do {
        _ = try parse(text, files: files, defines: defines)
        Issue.record("expected errors, parsed fine", sourceLocation: sourceLocation)
        return []
    } catch let e as ConfigErrors {
        return e.errors
    } catch {
        Issue.record("unexpected error type \(error)", sourceLocation: sourceLocation)
        return []
    }
}

/// The single error a text produces.
func error(_ text: String, files: [String: String] = [:], sourceLocation: Testing.SourceLocation = #_sourceLocation) -> ConfigError? {
    let all = errors(text, files: files, sourceLocation: sourceLocation)
    #expect(all.count == 1, "errors: \(all)", sourceLocation: sourceLocation)
    return all.first
}

func ip(_ s: String) -> IPAddress { IPAddress(s)! }
func net(_ s: String) -> IPPrefix { IPPrefix(s)! }

/// SASpec is not Equatable (it holds keys); compare every field, keys in constant time.
func same(_ a: SASpec, _ b: SASpec) -> Bool {
    a.proto == b.proto && a.mode == b.mode && a.source == b.source && a.destination == b.destination
        && a.spi == b.spi && a.encapsulation == b.encapsulation && a.encryption == b.encryption
        && a.encryptionKey == b.encryptionKey && a.integrity == b.integrity && a.integrityKey == b.integrityKey
        && a.replayWindow == b.replayWindow && a.extendedSequence == b.extendedSequence
        && a.softLifetime == b.softLifetime && a.hardLifetime == b.hardLifetime
}

func sameConfiguration(_ a: Configuration, _ b: Configuration) -> Bool {
    a.flows == b.flows && a.tunables == b.tunables && a.sas.count == b.sas.count
        && zip(a.sas, b.sas).allSatisfy(same)
}
