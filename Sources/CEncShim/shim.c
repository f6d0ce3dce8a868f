/* CEncShim is mostly header-only (include/CEncShim.h); what needs headers Swift's
 * module cannot see lives here. */
#include "CEncShim.h"
#include <linux/udp.h>

/* Appends one control message to `m` (whose buffer has room) and returns its size. */
static size_t put_cmsg(struct msghdr *m, size_t used, int level, int type, const void *data, size_t len) {
    struct cmsghdr *c = (struct cmsghdr *)((char *)m->msg_control + used);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), data, len);
    return CMSG_SPACE(len);
}

long encshim_udp_send_run(int fd, int ipv6, const void *local, const void *remote, uint16_t port,
                          int traffic_class, int hop_limit, uint16_t segment, const void *buf, size_t len) {
    union {
        char buf[CMSG_SPACE(sizeof(struct encshim_in6_pktinfo)) + 2 * CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct sockaddr_in to4;
    struct sockaddr_in6 to6;
    struct iovec iov = { (void *)buf, len };
    struct msghdr m;
    memset(&m, 0, sizeof m);
    memset(control.buf, 0, sizeof control.buf);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control.buf;
    size_t used = 0;
    if (ipv6) {
        memset(&to6, 0, sizeof to6);
        to6.sin6_family = AF_INET6;
        memcpy(&to6.sin6_addr, remote, 16);
        to6.sin6_port = htons(port);
        m.msg_name = &to6;
        m.msg_namelen = sizeof to6;
        struct encshim_in6_pktinfo info;
        memset(&info, 0, sizeof info);
        memcpy(&info.addr, local, 16);
        used += put_cmsg(&m, used, IPPROTO_IPV6, IPV6_PKTINFO, &info, sizeof info);
        used += put_cmsg(&m, used, IPPROTO_IPV6, IPV6_TCLASS, &traffic_class, sizeof(int));
        used += put_cmsg(&m, used, IPPROTO_IPV6, IPV6_HOPLIMIT, &hop_limit, sizeof(int));
    } else {
        memset(&to4, 0, sizeof to4);
        to4.sin_family = AF_INET;
        memcpy(&to4.sin_addr, remote, 4);
        to4.sin_port = htons(port);
        m.msg_name = &to4;
        m.msg_namelen = sizeof to4;
        struct encshim_in_pktinfo_v4 info;
        memset(&info, 0, sizeof info);
        memcpy(&info.spec_dst, local, 4);
        used += put_cmsg(&m, used, IPPROTO_IP, IP_PKTINFO, &info, sizeof info);
        used += put_cmsg(&m, used, IPPROTO_IP, IP_TOS, &traffic_class, sizeof(int));
        used += put_cmsg(&m, used, IPPROTO_IP, IP_TTL, &hop_limit, sizeof(int));
    }
    if (segment) used += put_cmsg(&m, used, IPPROTO_UDP, UDP_SEGMENT, &segment, sizeof(uint16_t));
    m.msg_controllen = used;
    return (long)sendmsg(fd, &m, 0);
}
