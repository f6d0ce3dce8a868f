#!/usr/bin/env bash
# Starts the installed encd.service once for real under systemd, in a container:
# debootstrap a minimal bookworm with systemd, `make install BUILD=debug` into it
# (the debug binaries find the Swift runtime in /opt/swift, bound read-only), boot it
# with systemd-nspawn on a private network, and from a oneshot unit inside: start encd
# (Type=notify: start returns once encd says READY=1), reload it (RELOADING=1/READY=1),
# wait past WatchdogSec (still running, no restart: the watchdog is fed), stop it
# (the table stays), and print systemd-analyze security. Not part of the test run
# (it downloads a Debian root); Docs/packaging.md records its output.
#   sudo scripts/systemd-check.sh            # the report ends up on standard output
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
command -v systemd-nspawn >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container >/dev/null
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
R=$(mktemp -d /tmp/encd-systemd.XXXX)
trap 'rm -rf --one-file-system "$R"' EXIT
mirror=$(sed -n 's/^URIs: *\(.*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
echo "== debootstrap (minbase + systemd) into $R"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,nftables,iproute2,libnftnl11,libmnl0,libnetfilter-queue1,libssl3,procps \
    bookworm "$R" ${mirror:+"$mirror"} >/dev/null
swift build >/dev/null
make install BUILD=debug DESTDIR="$R" PREFIX=/usr >/dev/null
mkdir -p "$R/opt/swift"
cat >"$R/root/check.sh" <<'CHECK'
#!/bin/bash
exec >/root/check.log 2>&1
systemctl start encd.service; echo "start: rc=$?"
systemctl show encd.service -p Type -p ActiveState -p SubState -p StatusText -p WatchdogUSec
echo "tables: $(nft list tables | tr '\n' ' ')"
systemctl reload encd.service; echo "reload: rc=$?"
systemctl show encd.service -p ActiveState -p StatusText
sleep 35
echo "after 35 s (WatchdogSec=30s):"; systemctl show encd.service -p ActiveState -p NRestarts
systemctl stop encd.service; echo "stop: rc=$?"
systemctl show encd.service -p ActiveState
echo "tables after the stop: $(nft list tables | tr '\n' ' ')"
journalctl -u encd.service --no-pager -o cat | grep -E "encd:|Started|Reloaded|Stopped"
systemd-analyze security encd.service --no-pager | tail -1
CHECK
chmod +x "$R/root/check.sh"
cat >"$R/etc/systemd/system/encd-check.service" <<'UNIT'
[Unit]
Description=check encd under systemd, then power off
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/check.sh
ExecStartPost=/bin/systemctl poweroff
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/encd-check.service "$R/etc/systemd/system/multi-user.target.wants/encd-check.service"
echo "== boot (systemd-nspawn, private network)"
# This machine's host has cgroup v1 without systemd's hierarchy: give the container one
# in a private mount namespace.
timeout 300 unshare -m --propagation private bash -c "
  mount -t tmpfs tmpfs /sys/fs/cgroup && mkdir /sys/fs/cgroup/systemd &&
  mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd &&
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0 systemd-nspawn -q -D '$R' --private-network --bind-ro=/opt/swift --register=no --keep-unit -b" >/dev/null 2>&1 || true
cat "$R/root/check.log"
grep -q "^start: rc=0" "$R/root/check.log" && grep -q "NRestarts=0" "$R/root/check.log"
