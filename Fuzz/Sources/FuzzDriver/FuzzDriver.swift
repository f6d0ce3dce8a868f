// FuzzDriver: starts libFuzzer from a SwiftPM executable. SwiftPM gives every
// executable its own entry point, so libFuzzer's main cannot be used; its
// LLVMFuzzerRunDriver (libclang_rt.fuzzer_no_main, linked by scripts/fuzz.sh) runs the
// same loop with the command line and a callback.

#if canImport(Glibc)
import Glibc
#endif

public typealias FuzzTarget = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: FuzzTarget) -> Int32

/// Runs libFuzzer over `target` with this process's arguments; never returns.
public func runFuzzer(_ target: FuzzTarget) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, target))
}
