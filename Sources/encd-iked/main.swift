// encd-iked [-dnv] [-C directory] [-D macro=value] [-f file] [-S socket] [-s socket]:
// IKEv2 key management for encd (encd-iked(8)). -S names encd's control socket (as
// encctl's -S), -s encd-iked's own socket for ikectl (as iked's -s), -C the directory
// of CAs, CRLs, certificates and the private key (iked's /etc/iked).

#if canImport(Glibc)
import Glibc
#endif
import Config
import IKEConfig
import IKEDaemon

func usage() -> Never {
    fputs("usage: encd-iked [-dnv] [-C directory] [-D macro=value] [-f file] [-S socket] [-s socket]\n", stderr)
    exit(1)
}

var options = IKEDaemonOptions()
var args = Array(CommandLine.arguments.dropFirst())
while let a = args.first, a.hasPrefix("-"), a.count > 1 {
    args.removeFirst()
    var flags = Array(a.dropFirst())
    while !flags.isEmpty {
        let f = flags.removeFirst()
        func value() -> String {
            if !flags.isEmpty { defer { flags = [] }; return String(flags) }
            guard !args.isEmpty else { usage() }
            return args.removeFirst()
        }
        switch f {
        case "d": options.foreground = true
        case "n": options.checkOnly = true
        case "v": options.verbose = true
        case "f": options.configPath = value()
        case "S": options.encdSocket = value()
        case "s": options.ikectlSocket = value()
        case "C": options.pkiDirectory = value()
        case "D":
            guard let (name, v) = ConfigParser.parseDefine(value()) else {
                fputs("encd-iked: -D takes macro=value\n", stderr)
                exit(1)
            }
            options.defines[name] = v
        default: usage()
        }
    }
}
if !args.isEmpty { usage() }

let configuration: IkedConfiguration
do {
    configuration = try IkedConfParser.load(path: options.configPath, defines: options.defines)
} catch {
    fputs("\(error)\n", stderr)
    exit(1)
}
if options.checkOnly {
    do {
        _ = try IKEDaemon.credentials(for: configuration, directory: options.pkiDirectory)
    } catch {
        fputs("encd-iked: \(error)\n", stderr)
        exit(1)
    }
    if options.verbose { print(IkedPrinter.describe(configuration), terminator: "") }
    print("configuration OK")
    exit(0)
}
do {
    let daemon = try IKEDaemon(options: options, configuration: configuration)
    try daemon.run()
} catch {
    fputs("encd-iked: \(error)\n", stderr)
    exit(1)
}
