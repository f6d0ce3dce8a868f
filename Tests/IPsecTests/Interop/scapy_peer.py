#!/usr/bin/env python3
"""An IPsec peer encd did not write: scapy's ESP/AH implementation (scapy.layers.ipsec).

The interop tests (Tests/IPsecTests/InteropScapyTests.swift) run this script with one
JSON document on stdin and read one JSON document from stdout:

  {"jobs": [{"sa": SA, "op": "decrypt" | "encrypt", "packets": [PACKET, ...]}, ...]}

  SA      {"proto": "esp" | "ah", "mode": "tunnel" | "transport", "spi": int,
           "src": addr, "dst": addr, "enc": encd name or null, "enc_key": "0x.." or null,
           "auth": encd name or null, "auth_key": "0x.." or null, "esn": bool,
           "udp": [sport, dport] or null}
  PACKET  {"hex": wire bytes (decrypt) or inner packet (encrypt), "seq": 64-bit sequence
           number: for decrypt only its high half is used (scapy cannot infer it)}

The answer has one result per job, one entry per packet: {"hex": ...} with the inner
packet (decrypt) or the wire packet (encrypt), or {"error": "..."} when scapy refused
the packet (a failed ICV, a malformed packet). Anything wrong with the request itself
(an algorithm scapy lacks, bad JSON) exits with status 2 and a message on stderr.
"""

import hashlib
import json
import sys
import warnings

warnings.filterwarnings("ignore")

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers import ipsec  # noqa: E402

# encd's ipsec.conf names (Sources/Crypto/Algorithms.swift) -> scapy's names. scapy,
# like encd, takes the 4-byte salt of GCM/GMAC/CTR/ChaCha20 at the end of the key.
ENC = {
    "null": "NULL",
    "aes": "AES-CBC", "aes-128": "AES-CBC", "aes-192": "AES-CBC", "aes-256": "AES-CBC",
    "aesctr": "AES-CTR", "aes-128-ctr": "AES-CTR", "aes-192-ctr": "AES-CTR", "aes-256-ctr": "AES-CTR",
    "aes-128-gcm": "AES-GCM", "aes-192-gcm": "AES-GCM", "aes-256-gcm": "AES-GCM",
    "aes-128-gmac": "AES-NULL-GMAC", "aes-192-gmac": "AES-NULL-GMAC", "aes-256-gmac": "AES-NULL-GMAC",
    "chacha20-poly1305": "CHACHA20-POLY1305",
    "3des-cbc": "3DES",
    "blowfish": "Blowfish",
    "cast128": "CAST",
}
AUTH = {
    "hmac-md5": "HMAC-MD5-96",
    "hmac-sha1": "HMAC-SHA1-96",
    "hmac-sha2-256": "SHA2-256-128",
    "hmac-sha2-384": "SHA2-384-192",
    "hmac-sha2-512": "SHA2-512-256",
}


class RequestError(Exception):
    pass


def key_bytes(text):
    if text is None:
        return None
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def ip_class(addr):
    return IPv6 if ":" in addr else IP


def parse_ip(raw):
    return (IP if raw[0] >> 4 == 4 else IPv6)(raw)


def make_sa(spec):
    proto = {"esp": ipsec.ESP, "ah": ipsec.AH}.get(spec["proto"])
    if proto is None:
        raise RequestError("unknown proto %r" % spec["proto"])
    kwargs = {"esn_en": bool(spec.get("esn"))}
    enc = spec.get("enc")
    if enc is not None:
        if enc not in ENC or ENC[enc] not in ipsec.CRYPT_ALGOS:
            raise RequestError("scapy %s has no cipher for %r" % (ipsec.conf.version, enc))
        kwargs["crypt_algo"] = ENC[enc]
        kwargs["crypt_key"] = key_bytes(spec.get("enc_key"))
    auth = spec.get("auth")
    if auth is not None:
        if auth not in AUTH or AUTH[auth] not in ipsec.AUTH_ALGOS:
            raise RequestError("scapy %s has no integrity algorithm for %r" % (ipsec.conf.version, auth))
        kwargs["auth_algo"] = AUTH[auth]
        kwargs["auth_key"] = key_bytes(spec.get("auth_key"))
    if spec["mode"] == "tunnel":
        kwargs["tunnel_header"] = ip_class(spec["dst"])(src=spec["src"], dst=spec["dst"])
    elif spec["mode"] != "transport":
        raise RequestError("unknown mode %r" % spec["mode"])
    if spec.get("udp"):
        sport, dport = spec["udp"]
        kwargs["nat_t_header"] = UDP(sport=sport, dport=dport)
    return ipsec.SecurityAssociation(proto, spec["spi"], **kwargs)


def decrypt(sa, packet):
    wire = bytes.fromhex(packet["hex"])
    high = packet.get("seq", 0) >> 32
    inner = sa.decrypt(parse_ip(wire), esn=high)
    return bytes(inner)


def encrypt(sa, packet, spi):
    inner = parse_ip(bytes.fromhex(packet["hex"]))
    seq = packet["seq"]
    low, high = seq & 0xFFFFFFFF, seq >> 32
    if low == 0:
        raise RequestError("scapy treats sequence number 0 as 'use the SA's counter'")
    kwargs = {"seq_num": low, "esn": high}
    if sa.proto is ipsec.ESP and sa.crypt_algo.iv_size:
        # A deterministic IV, unique per (SA, sequence number), so runs are repeatable.
        digest = hashlib.sha256(b"%d/%d" % (spi, seq)).digest()
        kwargs["iv"] = digest[:sa.crypt_algo.iv_size]
    return bytes(sa.encrypt(inner, **kwargs))


def run(request):
    results = []
    for job in request["jobs"]:
        sa = make_sa(job["sa"])
        op = job["op"]
        if op not in ("decrypt", "encrypt"):
            raise RequestError("unknown op %r" % op)
        out = []
        for packet in job["packets"]:
            try:
                if op == "decrypt":
                    out.append({"hex": decrypt(sa, packet).hex()})
                else:
                    out.append({"hex": encrypt(sa, packet, job["sa"]["spi"]).hex()})
            except RequestError:
                raise
            except Exception as err:  # scapy's verdict on this packet
                out.append({"error": "%s: %s" % (type(err).__name__, err)})
        results.append(out)
    return {"scapy": ipsec.conf.version, "results": results}


def main():
    try:
        answer = run(json.load(sys.stdin))
    except (RequestError, KeyError, ValueError) as err:
        print("scapy_peer: %s: %s" % (type(err).__name__, err), file=sys.stderr)
        return 2
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
