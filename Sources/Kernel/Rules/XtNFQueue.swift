// XtNFQueue: target info for xtables' NFQUEUE target, revision 3
// (struct xt_NFQ_info_v3 {queuenum, queues_total, flags}, linux/netfilter/xt_NFQUEUE.h),
// used through nft_compat when the kernel has no native nf_tables `queue` expression.
// nft_compat wants the info padded to XT_ALIGN (8 bytes on 64-bit).

import CEncShim

enum XtNFQueue {
    /// `bypass` (NFQ_FLAG_BYPASS): with no listener the kernel accepts the packet. Only
    /// `.queueFailOpen` asks for it; every other queue drops when encd is not there.
    static func info(number: UInt16, total: UInt16, fanout: Bool, bypass: Bool = false) -> [UInt8] {
        let size = Int(encshim_xt_nfq_info_v3_size())
        let aligned = (size + 7) & ~7
        var out = [UInt8](repeating: 0, count: aligned)
        let flags: UInt16 = (fanout ? encshim_nfq_flag_cpu_fanout() : 0) | (bypass ? encshim_nfq_flag_bypass() : 0)
        out.withUnsafeMutableBytes { encshim_xt_nfq_info_v3_fill($0.baseAddress, number, total, flags) }
        return out
    }
}
