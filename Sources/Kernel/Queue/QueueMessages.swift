// QueueMessages: NFQUEUE netlink messages, built with libnetfilter_queue's mnl API
// (nfq_nlmsg_put, nfq_nlmsg_cfg_put_*, nfq_nlmsg_verdict_put*) into caller-owned
// memory. Config messages are control path; `putVerdict` is packet path and writes
// into the queue's preallocated verdict buffer without allocating.

#if canImport(Glibc)
import Glibc
#endif
import CNetfilter

public enum QueueMessages {
    /// Bytes a verdict message needs besides a replacement payload.
    public static let verdictOverhead = 64

    /// NFQNL_CFG_CMD_BIND for `config.number` followed by the parameters message
    /// (copy mode and range, queue length, flags with mask). Both ask for an ack.
    public static func bind(_ config: QueueConfig, seq: UInt32) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 256)
        let length = buffer.withUnsafeMutableBytes { raw -> Int in
            let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
            let bind = nfq_nlmsg_put(base, Int32(NFQNL_MSG_CONFIG.rawValue), UInt32(config.number))!
            bind.pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
            bind.pointee.nlmsg_seq = seq
            nfq_nlmsg_cfg_put_cmd(bind, UInt16(AF_UNSPEC), UInt8(NFQNL_CFG_CMD_BIND.rawValue))
            let first = Int(bind.pointee.nlmsg_len)

            let params = nfq_nlmsg_put(base + first, Int32(NFQNL_MSG_CONFIG.rawValue), UInt32(config.number))!
            params.pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
            params.pointee.nlmsg_seq = seq &+ 1
            nfq_nlmsg_cfg_put_params(params, UInt8(NFQNL_COPY_PACKET.rawValue), Int32(config.copyRange))
            nfq_nlmsg_cfg_put_qmaxlen(params, config.maxLength)
            let mask = UInt32(NFQA_CFG_F_FAIL_OPEN) | UInt32(NFQA_CFG_F_CONNTRACK) | UInt32(NFQA_CFG_F_GSO)
            mnl_attr_put_u32(params, UInt16(NFQA_CFG_FLAGS.rawValue), config.flags.bigEndian)
            mnl_attr_put_u32(params, UInt16(NFQA_CFG_MASK.rawValue), mask.bigEndian)
            return first + Int(params.pointee.nlmsg_len)
        }
        return Array(buffer.prefix(length))
    }

    /// Writes one verdict message at `at` (which must have `verdictOverhead` +
    /// payload bytes of room) and returns its aligned length.
    @inline(__always)
    public static func putVerdict(at: UnsafeMutableRawPointer, queue: UInt16, id: UInt32,
                                  verdict: QueueVerdict, payload: UnsafeRawBufferPointer?) -> Int {
        let nlh = nfq_nlmsg_put(at.assumingMemoryBound(to: CChar.self), Int32(NFQNL_MSG_VERDICT.rawValue), UInt32(queue))!
        switch verdict {
        case .accept:
            nfq_nlmsg_verdict_put(nlh, Int32(bitPattern: id), NF_ACCEPT)
        case .drop:
            nfq_nlmsg_verdict_put(nlh, Int32(bitPattern: id), NF_DROP)
        case .acceptWithMark(let mark):
            nfq_nlmsg_verdict_put(nlh, Int32(bitPattern: id), NF_ACCEPT)
            nfq_nlmsg_verdict_put_mark(nlh, mark)
        }
        if let payload, let p = payload.baseAddress {
            nfq_nlmsg_verdict_put_pkt(nlh, p, UInt32(payload.count))
        }
        return (Int(nlh.pointee.nlmsg_len) + 3) & ~3
    }
}
