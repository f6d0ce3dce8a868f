#!/usr/bin/env python3
"""An IPsec gateway encd did not write, for Tests/Integration/interop_peer_test.sh.

Runs inside a network namespace and owns the far side of encd's SAs with scapy's ESP
implementation (scapy.layers.ipsec), not the kernel's:

  1. receive   an AF_PACKET socket on the interface sees every IPv4 frame before
               netfilter (the test drops inbound ESP in an nft input rule, so the
               kernel neither decrypts nor answers it)
  2. decrypt   ESP addressed to a local endpoint of a configured SA pair, looked up
               by SPI; scapy verifies the ICV (a failure is counted, not answered)
  3. answer    an ICMP echo request to one of the --answer addresses gets an echo
               reply built here (same id, sequence and data)
  4. encrypt   the reply through the pair's outbound SA (tunnel: outer header
               local -> peer; transport: the reply's own header)
  5. send      through a raw IPv4 socket (IP_HDRINCL); the kernel routes and resolves

One JSON file configures it (argument 1):

  {"iface": "wan", "answer": ["198.18.2.20"],
   "pairs": [{"mode": "tunnel" | "transport", "local": addr, "peer": addr,
              "in":  {"spi": int, "enc": encd name, "enc_key": "0x..",
                      "auth": encd name or null, "auth_key": "0x.." or null},
              "out": {... the same ...}}]}

Algorithm names are encd's (ipsec.conf), mapped to scapy's by scapy_peer.py. It
prints "ready" once the socket is open, and on SIGTERM/SIGINT one JSON line with its
counters and, per inbound SPI, the sequence numbers it saw (first, last, and whether
they only went up), then exits 0.
"""

import json
import os
import signal
import socket
import sys
import warnings

warnings.filterwarnings("ignore")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "IPsecTests", "Interop"))

from scapy.layers.inet import IP, ICMP  # noqa: E402
from scapy.layers import ipsec  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy_peer import ENC, AUTH, key_bytes  # noqa: E402

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
ETH_HEADER = 14


def make_sa(mode, spec, local, peer):
    kwargs = {"crypt_algo": ENC[spec["enc"]], "crypt_key": key_bytes(spec["enc_key"])}
    if spec.get("auth"):
        kwargs["auth_algo"] = AUTH[spec["auth"]]
        kwargs["auth_key"] = key_bytes(spec["auth_key"])
    if mode == "tunnel":
        # scapy strips the outer header on decrypt only when the SA has one.
        kwargs["tunnel_header"] = IP(src=local, dst=peer)
    elif mode != "transport":
        raise SystemExit("scapy_gateway: unknown mode %r" % mode)
    return ipsec.SecurityAssociation(ipsec.ESP, spec["spi"], **kwargs)


class Gateway:
    def __init__(self, config):
        self.iface = config["iface"]
        self.answer = set(config["answer"])
        self.by_spi = {}
        for p in config["pairs"]:
            sa_in = make_sa(p["mode"], p["in"], p["peer"], p["local"])
            sa_out = make_sa(p["mode"], p["out"], p["local"], p["peer"])
            self.by_spi[p["in"]["spi"]] = (p["local"], sa_in, sa_out)
        self.counts = {"esp_in": 0, "decrypted": 0, "icv_failed": 0, "not_echo": 0,
                       "echo_answered": 0, "esp_out": 0, "unknown_spi": 0}
        self.seq = {}
        self.stop = False

    def run(self):
        rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        rx.bind((self.iface, 0))
        rx.settimeout(0.2)
        tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        print("ready", flush=True)
        while not self.stop:
            try:
                frame, addr = rx.recvfrom(65535)
            except socket.timeout:
                continue
            except InterruptedError:
                continue
            if addr[2] == PACKET_OUTGOING or len(frame) < ETH_HEADER + 20:
                continue
            self.handle(frame[ETH_HEADER:], tx)

    def handle(self, data, tx):
        if data[0] >> 4 != 4 or data[9] != socket.IPPROTO_ESP:
            return
        outer = IP(data)
        esp = outer[ipsec.ESP]
        entry = self.by_spi.get(esp.spi)
        if entry is None or outer.dst != entry[0]:
            self.counts["unknown_spi"] += 1
            return
        _, sa_in, sa_out = entry
        self.counts["esp_in"] += 1
        self.note_sequence(esp.spi, esp.seq)
        try:
            inner = sa_in.decrypt(outer)
        except ipsec.IPSecIntegrityError:
            self.counts["icv_failed"] += 1
            return
        self.counts["decrypted"] += 1
        if not isinstance(inner, IP) or ICMP not in inner or inner[ICMP].type != 8 or inner.dst not in self.answer:
            self.counts["not_echo"] += 1
            return
        req = inner[ICMP]
        reply = IP(src=inner.dst, dst=inner.src, ttl=64) / ICMP(type=0, code=0, id=req.id, seq=req.seq) / Raw(bytes(req.payload))
        wire = sa_out.encrypt(reply)
        tx.sendto(bytes(wire), (wire.dst, 0))
        self.counts["echo_answered"] += 1
        self.counts["esp_out"] += 1

    def note_sequence(self, spi, seq):
        key = "0x%08x" % spi
        s = self.seq.get(key)
        if s is None:
            self.seq[key] = {"first": seq, "last": seq, "increasing": True}
            return
        if seq <= s["last"]:
            s["increasing"] = False
        s["last"] = seq


def main():
    with open(sys.argv[1]) as f:
        gw = Gateway(json.load(f))

    def stop(*_):
        gw.stop = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    gw.run()
    print(json.dumps({"counts": gw.counts, "sequences": gw.seq}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
