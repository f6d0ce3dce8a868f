#!/usr/bin/env bash
# Installs what encd needs to build, test, package and document itself on Debian
# bookworm (run as root), starting from a minimal system (debootstrap --variant=minbase)
# with only the Swift toolchain at /opt/swift. Idempotent and quick: when every package
# is present it runs no apt at all; otherwise one `apt-get update`, one install.
set -euo pipefail
pkgs=(
    # encd's C libraries and their headers
    libssl-dev libnftnl-dev libmnl-dev libnetfilter-queue-dev pkg-config
    # what the Swift toolchain itself loads or links with (clang needs the C and C++
    # runtimes and headers; SwiftPM loads libcurl, libxml2, sqlite, ncurses, libedit)
    binutils libc6-dev libgcc-12-dev libstdc++-12-dev zlib1g-dev libcurl4 libxml2
    libsqlite3-0 libncurses6 libedit2 libicu72 git ca-certificates tzdata
    # the integration tests: namespaces, traffic, captures, sysctl, offloads
    nftables iproute2 iputils-ping tcpdump tshark iperf3 conntrack netcat-openbsd procps ethtool
    python3 python3-pip python3-cryptography openssl
    # manual pages (mandoc -Tlint, man --warnings), the unit (systemd-analyze), packaging
    mandoc man-db systemd dpkg-dev make
)
missing=()
for p in "${pkgs[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    echo "install-deps: apt-get install ${missing[*]}"
    apt-get update -qq
    # tshark asks whether non-root users may capture; the answer does not matter here.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# strongSwan for encd-iked's interop test (charon with kernel-libipsec, in a namespace
# only): without its Recommends, which would bring strongswan-starter and its service.
ss=(strongswan-charon strongswan-swanctl strongswan-pki libcharon-extra-plugins libstrongswan-standard-plugins)
ss_missing=()
for p in "${ss[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || ss_missing+=("$p")
done
if ((${#ss_missing[@]})); then
    echo "install-deps: apt-get install --no-install-recommends ${ss_missing[*]}"
    ((${#missing[@]})) || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${ss_missing[@]}" >/dev/null
fi
# Python modules for the interop and exporter tests, for whichever python3 is first in
# PATH (Debian's has python3-cryptography from above; scapy and prometheus_client come
# from PyPI, as Debian's scapy is older than the tests expect).
pip_install() {
    python3 -m pip install -q "$1" 2>/dev/null || python3 -m pip install -q --break-system-packages "$1"
}
for m in scapy:scapy prometheus_client:prometheus-client cryptography:cryptography; do
    python3 -c "import ${m%%:*}" 2>/dev/null || { echo "install-deps: pip install ${m#*:}"; pip_install "${m#*:}"; }
done
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
swift --version >/dev/null || { echo "install-deps: swift does not run (is /opt/swift there?)" >&2; exit 1; }
