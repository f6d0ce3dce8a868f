#!/usr/bin/env bash
# Installs what encd needs to build and test on Debian bookworm (run as root).
# Idempotent: packages already present are left alone.
set -euo pipefail
pkgs=(libssl-dev libnftnl-dev libmnl-dev libnetfilter-queue-dev pkg-config
      nftables iproute2 iputils-ping tcpdump tshark iperf3 conntrack netcat-openbsd python3-pip)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    echo "install-deps: apt-get install ${missing[*]}"
    apt-get update -qq
    # tshark asks whether non-root users may capture; the answer does not matter here.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import scapy' 2>/dev/null; then
    echo "install-deps: pip install scapy"
    python3 -m pip install -q scapy 2>/dev/null || python3 -m pip install -q --break-system-packages scapy
fi
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
    echo "install-deps: pip install prometheus-client"
    python3 -m pip install -q prometheus-client 2>/dev/null || python3 -m pip install -q --break-system-packages prometheus-client
fi
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
swift --version >/dev/null
