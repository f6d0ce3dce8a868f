// Fuzzes encd-iked's IKEv2 codec (issue #10): any bytes as one UDP payload, decoded;
// what decodes is encoded again and must decode to the same message, and an SK
// payload's inner bytes are walked as a payload chain. Contract: a value or an
// IKEDecodeError for every input, never a trap or an out-of-bounds read. The same
// bytes also go to what reads a peer's certificate material: RFC 7427's
// AlgorithmIdentifier reader, and as a DER certificate (the identities it would prove
// are asked); so do the CERT and AUTH payloads of a decoded message.

import FuzzDriver
import IKE
import IKECrypto

func certificateMaterial(_ bytes: [UInt8]) {
    _ = IKESignatureScheme(algorithmIdentifier: bytes)
    if let first = bytes.first, bytes.count > Int(first) {
        _ = IKESignatureScheme(algorithmIdentifier: Array(bytes[1..<(1 + Int(first))]))
    }
    if let c = IKECertificate(der: bytes) {
        for type: UInt8 in [1, 2, 3, 5, 9] { _ = c.proves(type: type, data: Array(bytes.prefix(16))) }
        _ = c.subject
        _ = c.keyHash
    }
}

func fuzzIKE(_ input: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: input, count: size))
    certificateMaterial(bytes)
    guard case .success(let message) = IKEMessage.decode(bytes) else { return 0 }
    let again = IKEMessage.decode(message.encode())
    precondition(again == .success(message), "re-encoded message decodes differently")
    for p in message.payloads {
        switch p.body {
        case .encrypted(let first, let data): _ = IKEPayloads.decode(data, first: first)
        case .certificate(_, let data), .authentication(_, let data): certificateMaterial(data)
        default: break
        }
    }
    return 0
}

@main enum Main {
    static func main() { runFuzzer(fuzzIKE) }
}
