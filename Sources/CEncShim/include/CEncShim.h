/* CEncShim: kernel constants that Swift cannot import (macros with casts, ioctl
 * numbers), wrappers for variadic calls (ioctl) and tiny inline helpers, all prefixed
 * encshim_. Constants come from the kernel headers, never retyped.
 *
 * The ioctl helpers only fill the request and make the call; the caller (Swift,
 * Kernel/System/Syscall.swift) retries EINTR and turns errno into an error. */
#ifndef ENCD_CENCSHIM_H
#define ENCD_CENCSHIM_H
/* No feature macros (_GNU_SOURCE and the like): glibc's types must be defined here
 * exactly as in Swift's Glibc module and CNetfilter, or clang refuses to merge them
 * (fd_set's member is named differently under _GNU_SOURCE) and a clean build fails. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <linux/if_tun.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <linux/in6.h>   /* after netinet/in.h (libc-compat): IPV6_FLOWINFO, which glibc lacks */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/filter.h>

/* Keeps key material out of core dumps (and /proc/PID/mem of other users): prctl is
 * variadic, so Swift cannot call it. */
static inline int encshim_set_dumpable(int on) { return prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0); }

/* Names the calling thread as `top -H` and /proc/PID/task/TID/comm show it (at most
 * 15 bytes are kept). Foundation's Thread.name does not reach the kernel on Linux. */
static inline int encshim_set_thread_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

static inline unsigned long encshim_tunsetiff(void) { return TUNSETIFF; }
static inline short encshim_iff_tun(void) { return IFF_TUN; }
static inline short encshim_iff_no_pi(void) { return IFF_NO_PI; }
static inline short encshim_iff_tap(void) { return IFF_TAP; }
static inline short encshim_iff_vnet_hdr(void) { return IFF_VNET_HDR; }

/* SIOCSIFHWADDR: sets an Ethernet device's MAC address. */
static inline int encshim_set_hwaddr(int sock, const char *name, const unsigned char mac[6]) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
    return ioctl(sock, SIOCSIFHWADDR, &ifr);
}

/* SIOCGIFFLAGS/SIOCSIFFLAGS: sets IFF_NOARP, so the kernel resolves no neighbours on it. */
static inline int encshim_set_noarp(int sock, const char *name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) return -1;
    ifr.ifr_flags |= IFF_NOARP;
    return ioctl(sock, SIOCSIFFLAGS, &ifr);
}
static inline short encshim_iff_multi_queue(void) { return IFF_MULTI_QUEUE; }
static inline int encshim_errno(void) { return errno; }
static inline void encshim_set_errno(int value) { errno = value; }
static inline int encshim_ifnamsiz(void) { return IFNAMSIZ; }

/* SIOCSIFTXQLEN on an AF_INET datagram socket: the transmit queue length of `name`. */
static inline int encshim_set_txqlen(int sock, const char *name, int qlen) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_qlen = qlen;
    return ioctl(sock, SIOCSIFTXQLEN, &ifr);
}

/* TUNSETIFF: attach `fd` (an open /dev/net/tun) to the interface `name` with `flags`.
 * The kernel's chosen name (same as `name` unless it held a %d) is copied to
 * `out_name` (IFNAMSIZ bytes). Returns ioctl's result; errno is left for the caller. */
static inline int encshim_tun_set_iff(int fd, const char *name, short flags, char *out_name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = flags;
    int rc = ioctl(fd, TUNSETIFF, &ifr);
    if (rc == 0 && out_name) {
        memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
        out_name[IFNAMSIZ - 1] = 0;
    }
    return rc;
}

/* TUNSETOFFLOAD: the offloads the reader of a TUN/TAP descriptor opened with
 * IFF_VNET_HDR takes (TUN_F_CSUM, TUN_F_TSO4, ...): the kernel then hands it GSO frames
 * and packets with their checksum left to do, described by the virtio_net_hdr. */
static inline int encshim_tun_set_offload(int fd, unsigned int flags) {
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags);
}

/* The CPUs this process may run on (sched_getaffinity by syscall: glibc's CPU_*
 * macros need _GNU_SOURCE); 1 when the call fails. */
static inline int encshim_allowed_cpus(void) {
    unsigned long mask[16];
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    int count = 0;
    for (long i = 0; bytes > 0 && i < bytes / (long)sizeof mask[0]; i++) count += __builtin_popcountl(mask[i]);
    return count > 0 ? count : 1;
}

/* Several workers per stage (issue #9): each SA belongs to one worker.
 *
 * Outbound, enc0 is a multi-queue TAP with one queue per worker. The kernel picks the
 * queue of every frame routing sends into it with this steering program (an eBPF
 * socket filter; TUNSETSTEERINGEBPF): ((skb->mark & mask) >> shift) % queues, the
 * number of the outbound SA [X] chose, so every packet of one SA reaches one worker.
 * Loading it needs CAP_BPF (or CAP_SYS_ADMIN). The device keeps its own reference to
 * the program. Returns 0, or -1 with errno set. */
static inline int encshim_tun_steer_by_mark(int tunfd, uint32_t mask, uint32_t shift, uint32_t queues) {
    if (queues == 0 || shift > 31) { errno = EINVAL; return -1; }
    struct bpf_insn program[5];
    memset(program, 0, sizeof program);
    program[0].code = BPF_LDX | BPF_MEM | BPF_W;        /* r0 = skb->mark */
    program[0].dst_reg = BPF_REG_0;
    program[0].src_reg = BPF_REG_1;
    program[0].off = offsetof(struct __sk_buff, mark);
    program[1].code = BPF_ALU | BPF_AND | BPF_K;        /* w0 &= mask */
    program[1].imm = (int32_t)mask;
    program[2].code = BPF_ALU | BPF_RSH | BPF_K;        /* w0 >>= shift */
    program[2].imm = (int32_t)shift;
    program[3].code = BPF_ALU | BPF_MOD | BPF_K;        /* w0 %= queues */
    program[3].imm = (int32_t)queues;
    program[4].code = BPF_JMP | BPF_EXIT;
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insns = (uint64_t)(uintptr_t)program;
    attr.insn_cnt = 5;
    attr.license = (uint64_t)(uintptr_t)"BSD";
    int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
    if (prog < 0) return -1;
    int result = ioctl(tunfd, TUNSETSTEERINGEBPF, &prog);
    int saved = errno;
    close(prog);
    errno = saved;
    return result < 0 ? -1 : 0;
}

/* Inbound, every worker has its own raw ESP/AH sockets, and the kernel hands each
 * socket a copy of every packet. This classic BPF filter keeps a socket's share: the
 * packets whose ((SPI * multiplier mod 2^32) >> 16) % workers == index (WorkerShare's
 * SPI hash, multiplier 0x9E3779B1). The SPI is `spi_offset` bytes into ESP or
 * AH (0 and 4), which starts after the IPv4 header (`ipv4`: a raw IPv4 socket sees
 * the header, its length from IHL) or at the start (IPv6). A packet too short to hold
 * the SPI goes to worker 0, which counts it as malformed. SO_ATTACH_FILTER. */
static inline int encshim_attach_spi_share(int fd, int ipv4, uint32_t spi_offset, uint32_t multiplier,
                                           uint32_t workers, uint32_t index) {
    if (workers == 0 || index >= workers || spi_offset > 0xffff) { errno = EINVAL; return -1; }
    struct sock_filter code[] = {
        ipv4 ? (struct sock_filter)BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0)    /* 0  x = IPv4 header length */
             : (struct sock_filter)BPF_STMT(BPF_LDX | BPF_IMM, 0),           /*    x = 0 */
        BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),                               /* 1  a = length */
        BPF_STMT(BPF_ALU | BPF_SUB | BPF_X, 0),                              /* 2  a -= x */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, spi_offset + 4, 0, 5),           /* 3  short: to 9 */
        BPF_STMT(BPF_LD | BPF_W | BPF_IND, spi_offset),                      /* 4  a = SPI */
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, multiplier),                     /* 5  a *= multiplier (mod 2^32) */
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),                             /* 6  a >>= 16 */
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, workers),                        /* 7  a %= workers */
        BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0),                                 /* 8  to 10 */
        BPF_STMT(BPF_LD | BPF_IMM, 0),                                       /* 9  a = 0 */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, index, 0, 1),                    /* 10 ours? */
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),                               /* 11 keep it whole */
        BPF_STMT(BPF_RET | BPF_K, 0),                                        /* 12 not ours */
    };
    struct sock_fprog program = { .len = sizeof code / sizeof code[0], .filter = code };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}

/* recvmmsg(2): glibc declares it only with _GNU_SOURCE, which Swift's Glibc module
 * does not set, so the shim calls it by syscall number. The struct has the kernel's
 * struct mmsghdr layout. */
struct encshim_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
static inline int encshim_recvmmsg(int fd, struct encshim_mmsghdr *vec, unsigned int vlen, int flags) {
    return (int)syscall(SYS_recvmmsg, fd, vec, vlen, flags, (void *)0);
}

/* Sizes and layout of xt_NFQUEUE's v3 target info, for the nft_compat fallback. */
static inline int encshim_xt_nfq_info_v3_size(void) { return (int)sizeof(struct xt_NFQ_info_v3); }
static inline void encshim_xt_nfq_info_v3_fill(void *dst, uint16_t queuenum, uint16_t total, uint16_t flags) {
    struct xt_NFQ_info_v3 info;
    memset(&info, 0, sizeof(info));
    info.queuenum = queuenum;
    info.queues_total = total;
    info.flags = flags;
    memcpy(dst, &info, sizeof(info));
}
static inline uint16_t encshim_nfq_flag_bypass(void) { return NFQ_FLAG_BYPASS; }
static inline uint16_t encshim_nfq_flag_cpu_fanout(void) { return NFQ_FLAG_CPU_FANOUT; }
/* The credentials of a Unix socket's peer (SO_PEERCRED, socket(7)). glibc declares
 * struct ucred only with _GNU_SOURCE, so the shim spells the kernel's layout. */
struct encshim_ucred { int32_t pid; uint32_t uid; uint32_t gid; };
static inline int encshim_peer_cred(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct encshim_ucred c;
    socklen_t len = sizeof c;
    int rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len);
    if (rc == 0) { *pid = c.pid; *uid = c.uid; *gid = c.gid; }
    return rc;
}

/* Input sockets' receive details (ip(7), ipv6(7), socket(7)): raw ESP/AH and encd's
 * UDP socket for ESP in UDP. An IPv6 raw socket hands over the payload after the IPv6
 * header (and its extension headers), a UDP socket the datagram's payload; what the
 * headers said comes in control messages, which only C can walk (CMSG_* macros), and
 * glibc declares struct in6_pktinfo only with _GNU_SOURCE, so its layout is spelled. */
struct encshim_in6_pktinfo { struct in6_addr addr; int ifindex; };
struct encshim_rx_info {
    uint8_t destination[16]; /* IPV6_PKTINFO, IPV6_ORIGDSTADDR; IP_ORIGDSTADDR in the first 4 bytes */
    uint16_t destination_port; /* IP_ORIGDSTADDR, IPV6_ORIGDSTADDR (UDP), network order */
    uint32_t flowinfo;       /* IPV6_FLOWINFO, network order: traffic class and flow label (absent when 0) */
    int32_t hop_limit;       /* IPV6_HOPLIMIT, IP_TTL */
    uint32_t drops;          /* SO_RXQ_OVFL: what the socket dropped so far, for lack of room */
    uint32_t found;          /* ENCSHIM_RX_* bits */
    uint8_t tos;             /* IP_TOS (IPv4) */
};
#define ENCSHIM_RX_DESTINATION 1u
#define ENCSHIM_RX_FLOWINFO 2u
#define ENCSHIM_RX_HOPLIMIT 4u
#define ENCSHIM_RX_DROPS 8u
#define ENCSHIM_RX_TOS 16u
static inline int encshim_ipv6_flowinfo_option(void) { return IPV6_FLOWINFO; }
static inline int encshim_so_rxq_ovfl(void) { return SO_RXQ_OVFL; }
static inline int encshim_ip_recvorigdstaddr(void) { return IP_RECVORIGDSTADDR; }
static inline int encshim_ipv6_recvorigdstaddr(void) { return IPV6_RECVORIGDSTADDR; }
static inline void encshim_rx_info_read(const struct msghdr *m, struct encshim_rx_info *out) {
    out->found = 0;
    out->flowinfo = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR((struct msghdr *)m, c)) {
        size_t data = c->cmsg_len >= CMSG_LEN(0) ? c->cmsg_len - CMSG_LEN(0) : 0;
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && data >= sizeof(struct encshim_in6_pktinfo)) {
            struct encshim_in6_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof info);
            memcpy(out->destination, &info.addr, 16);
            out->found |= ENCSHIM_RX_DESTINATION;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_FLOWINFO && data >= sizeof(uint32_t)) {
            memcpy(&out->flowinfo, CMSG_DATA(c), sizeof(uint32_t));
            out->found |= ENCSHIM_RX_FLOWINFO;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT && data >= sizeof(int32_t)) {
            memcpy(&out->hop_limit, CMSG_DATA(c), sizeof(int32_t));
            out->found |= ENCSHIM_RX_HOPLIMIT;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR && data >= sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 a;
            memcpy(&a, CMSG_DATA(c), sizeof a);
            memcpy(out->destination, &a.sin6_addr, 16);
            out->destination_port = a.sin6_port;
            out->found |= ENCSHIM_RX_DESTINATION;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_ORIGDSTADDR && data >= sizeof(struct sockaddr_in)) {
            struct sockaddr_in a;
            memcpy(&a, CMSG_DATA(c), sizeof a);
            memcpy(out->destination, &a.sin_addr, 4);
            out->destination_port = a.sin_port;
            out->found |= ENCSHIM_RX_DESTINATION;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS && data >= 1) {
            out->tos = *(const uint8_t *)CMSG_DATA(c);
            out->found |= ENCSHIM_RX_TOS;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL && data >= sizeof(int32_t)) {
            memcpy(&out->hop_limit, CMSG_DATA(c), sizeof(int32_t));
            out->found |= ENCSHIM_RX_HOPLIMIT;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && data >= sizeof(uint32_t)) {
            memcpy(&out->drops, CMSG_DATA(c), sizeof(uint32_t));
            out->found |= ENCSHIM_RX_DROPS;
        }
    }
}


/* UDP for encd-iked: one datagram with the local address it was sent to (IP_PKTINFO,
 * IPV6_PKTINFO), and a send from a chosen local address, so one wildcard socket per
 * port serves every address of the host. Addresses are 4 or 16 bytes; *family is
 * AF_INET or AF_INET6. Returns the byte count or -1 (errno). */
struct encshim_udp_peer {
    int family;
    uint8_t remote[16];
    uint16_t remote_port;
    uint8_t local[16];
};
struct encshim_in_pktinfo_v4 { int ifindex; struct in_addr spec_dst; struct in_addr addr; };
static inline int encshim_udp_enable_pktinfo(int fd, int family) {
    int on = 1;
    if (family == AF_INET) return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
    return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
}
static inline long encshim_udp_recv(int fd, void *buf, size_t len, struct encshim_udp_peer *peer) {
    struct sockaddr_storage from;
    union { char buf[CMSG_SPACE(sizeof(struct encshim_in6_pktinfo)) + CMSG_SPACE(sizeof(struct encshim_in_pktinfo_v4))]; struct cmsghdr align; } control;
    struct iovec iov = { buf, len };
    struct msghdr m;
    memset(&m, 0, sizeof m);
    memset(peer, 0, sizeof *peer);
    m.msg_name = &from; m.msg_namelen = sizeof from;
    m.msg_iov = &iov; m.msg_iovlen = 1;
    m.msg_control = control.buf; m.msg_controllen = sizeof control.buf;
    ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
    if (n < 0) return -1;
    if (m.msg_flags & MSG_TRUNC) { errno = EMSGSIZE; return -1; }
    if (from.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&from;
        peer->family = AF_INET; memcpy(peer->remote, &a->sin_addr, 4); peer->remote_port = ntohs(a->sin_port);
    } else if (from.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&from;
        peer->family = AF_INET6; memcpy(peer->remote, &a->sin6_addr, 16); peer->remote_port = ntohs(a->sin6_port);
    } else { errno = EAFNOSUPPORT; return -1; }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct encshim_in_pktinfo_v4))) {
            struct encshim_in_pktinfo_v4 info; memcpy(&info, CMSG_DATA(c), sizeof info); memcpy(peer->local, &info.addr, 4);
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct encshim_in6_pktinfo))) {
            struct encshim_in6_pktinfo info; memcpy(&info, CMSG_DATA(c), sizeof info); memcpy(peer->local, &info.addr, 16);
        }
    }
    return (long)n;
}
static inline long encshim_udp_send(int fd, const void *buf, size_t len, const struct encshim_udp_peer *peer) {
    struct sockaddr_storage to;
    socklen_t tolen;
    union { char buf[CMSG_SPACE(sizeof(struct encshim_in6_pktinfo))]; struct cmsghdr align; } control;
    struct iovec iov = { (void *)buf, len };
    struct msghdr m;
    memset(&m, 0, sizeof m); memset(&to, 0, sizeof to); memset(control.buf, 0, sizeof control.buf);
    m.msg_iov = &iov; m.msg_iovlen = 1;
    m.msg_control = control.buf;
    struct cmsghdr *c = (struct cmsghdr *)control.buf;
    if (peer->family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&to;
        a->sin_family = AF_INET; memcpy(&a->sin_addr, peer->remote, 4); a->sin_port = htons(peer->remote_port);
        tolen = sizeof *a;
        struct encshim_in_pktinfo_v4 info; memset(&info, 0, sizeof info); memcpy(&info.spec_dst, peer->local, 4);
        c->cmsg_level = IPPROTO_IP; c->cmsg_type = IP_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof info);
        memcpy(CMSG_DATA(c), &info, sizeof info);
        m.msg_controllen = CMSG_SPACE(sizeof info);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to;
        a->sin6_family = AF_INET6; memcpy(&a->sin6_addr, peer->remote, 16); a->sin6_port = htons(peer->remote_port);
        tolen = sizeof *a;
        struct encshim_in6_pktinfo info; memset(&info, 0, sizeof info); memcpy(&info.addr, peer->local, 16);
        c->cmsg_level = IPPROTO_IPV6; c->cmsg_type = IPV6_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof info);
        memcpy(CMSG_DATA(c), &info, sizeof info);
        m.msg_controllen = CMSG_SPACE(sizeof info);
    }
    m.msg_name = &to; m.msg_namelen = tolen;
    return (long)sendmsg(fd, &m, 0);
}

/* UDP-encapsulated ESP sent as runs (issue #9, Kernel/Raw/UDPEncapSender.swift): one
 * sendmsg of `len` payload bytes from `local` (4 or 16 bytes, IP_PKTINFO/IPV6_PKTINFO)
 * and the socket's port to `remote`:`port`, with the IPv4 TOS and TTL (IPv6 traffic
 * class and hop limit) of encd's outer header; the kernel cuts it into datagrams of
 * `segment` bytes (UDP_SEGMENT), or sends one datagram when `segment` is 0. Returns
 * the byte count or -1 (errno). In shim.c: linux/udp.h, which names UDP_SEGMENT, also
 * defines a struct udphdr that clashes with glibc's in Swift's module. */
long encshim_udp_send_run(int fd, int ipv6, const void *local, const void *remote, uint16_t port,
                          int traffic_class, int hop_limit, uint16_t segment, const void *buf, size_t len);
/* A socket filter that keeps nothing: the send-only sockets above never queue a read. */
static inline int encshim_attach_drop_all(int fd) {
    struct sock_filter code[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
    struct sock_fprog program = { .len = 1, .filter = code };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}
static inline int encshim_ip_freebind(void) { return IP_FREEBIND; }
static inline int encshim_ip_pmtudisc_probe(void) { return IP_PMTUDISC_PROBE; }
static inline int encshim_ipv6_dontfrag(void) { return IPV6_DONTFRAG; }
static inline int encshim_ipv6_autoflowlabel(void) { return IPV6_AUTOFLOWLABEL; }

#endif
