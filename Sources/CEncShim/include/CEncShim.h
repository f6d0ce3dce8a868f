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

/* Keeps key material out of core dumps (and /proc/PID/mem of other users): prctl is
 * variadic, so Swift cannot call it. */
static inline int encshim_set_dumpable(int on) { return prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0); }

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

/* Raw IP sockets' receive details (ip(7), ipv6(7), socket(7)). An IPv6 raw socket
 * hands over the payload after the IPv6 header (and its extension headers); what the
 * header said comes in control messages, which only C can walk (CMSG_* macros), and
 * glibc declares struct in6_pktinfo only with _GNU_SOURCE, so its layout is spelled. */
struct encshim_in6_pktinfo { struct in6_addr addr; int ifindex; };
struct encshim_rx_info {
    uint8_t destination[16]; /* IPV6_PKTINFO */
    uint32_t flowinfo;       /* IPV6_FLOWINFO, network order: traffic class and flow label (absent when 0) */
    int32_t hop_limit;       /* IPV6_HOPLIMIT */
    uint32_t drops;          /* SO_RXQ_OVFL: what the socket dropped so far, for lack of room */
    uint32_t found;          /* ENCSHIM_RX_* bits */
};
#define ENCSHIM_RX_DESTINATION 1u
#define ENCSHIM_RX_FLOWINFO 2u
#define ENCSHIM_RX_HOPLIMIT 4u
#define ENCSHIM_RX_DROPS 8u
static inline int encshim_ipv6_flowinfo_option(void) { return IPV6_FLOWINFO; }
static inline int encshim_so_rxq_ovfl(void) { return SO_RXQ_OVFL; }
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
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && data >= sizeof(uint32_t)) {
            memcpy(&out->drops, CMSG_DATA(c), sizeof(uint32_t));
            out->found |= ENCSHIM_RX_DROPS;
        }
    }
}

#endif
