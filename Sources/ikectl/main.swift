// ikectl [-s socket] show sa | reload: asks encd-iked (ikectl(8)).

#if canImport(Glibc)
import Glibc
#endif
import Control
import IKEDaemon

func usage() -> Never {
    fputs("usage: ikectl [-s socket] show sa | reload\n", stderr)
    exit(1)
}

var socketPath = IkectlProtocol.defaultSocket
var args = Array(CommandLine.arguments.dropFirst())
// -s as iked's ikectl; -S as issue #10 and encctl spell a socket option.
if args.first == "-s" || args.first == "-S" {
    guard args.count >= 2 else { usage() }
    socketPath = args[1]
    args.removeFirst(2)
}
let command: String
switch args {
case ["show", "sa"], ["show"], ["sh", "sa"]: command = "show"
case ["reload"]: command = "reload"
default: usage()
}
do {
    let response = try IkectlClient.call(IkectlRequest(command: command), socket: socketPath)
    guard response.ok else {
        fputs("ikectl: \(response.error ?? "refused")\n", stderr)
        exit(1)
    }
    if command == "show" { print(IkectlFormat.show(response.sas ?? [], dropped: response.dropped ?? [:]), terminator: "") }
} catch {
    fputs("ikectl: \(error)\n", stderr)
    exit(1)
}
