// Fuzzes the ipsec.conf parser: any bytes as a configuration (includes and key files
// resolve into a small in-memory tree, so `include` and `file` paths are reached too).
// Contract: it returns a configuration or throws ConfigErrors whose every error has a
// file, line and column; it never traps. What it accepts must print and parse back.

import FuzzDriver
import Config

func fuzzConfig(_ input: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data = input else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let files = ["/etc/encd/inc.conf": "flow esp from 10.0.0.0/8 to any\n",
                 "/etc/encd/k": "0x" + String(repeating: "ab", count: 20) + "\n"]
    do {
        let c = try ConfigParser.parse(text: text, fileName: "/etc/encd/ipsec.conf", readFile: { path in
            guard let f = files[path] else { throw FileReadError(path: path, message: "No such file or directory") }
            return f
        })
        let printed = Printer.configuration(c, showKeys: true)
        guard (try? ConfigParser.parse(text: printed, fileName: "printed")) != nil else {
            fatalError("accepted configuration does not parse back after printing:\n\(printed)")
        }
    } catch let e as ConfigErrors {
        for err in e.errors where err.file.isEmpty { fatalError("error without a file: \(err)") }
    } catch {
        fatalError("parse threw something other than ConfigErrors: \(error)")
    }
    return 0
}

@main enum Main {
    static func main() { runFuzzer(fuzzConfig) }
}
