# encd: build, install, uninstall, Debian package.
#
#   make                      release build (Swift runtime linked statically)
#   make install              PREFIX=/usr/local, DESTDIR= honoured
#   make uninstall
#   make deb                  encd_$(VERSION)_amd64.deb (scripts/build-deb.sh)
#   make install BUILD=debug  install the debug binaries (tests; no release build)
#
# Where the files go: README.md, "Installing for real"; checked by
# Tests/Integration/install_test.sh.

PREFIX     ?= /usr/local
DESTDIR    ?=
BUILD      ?= release
VERSION    := $(shell cat VERSION)
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/encd
DOCDIR     ?= $(PREFIX)/share/doc/encd
# encd reads /etc/encd/ipsec.conf by default, whatever the PREFIX.
CONFDIR    ?= /etc/encd
SYSTEMDUNITDIR ?= $(shell pkg-config systemd --variable=systemdsystemunitdir 2>/dev/null || echo /lib/systemd/system)

SWIFT      ?= $(shell command -v swift || echo /opt/swift/usr/bin/swift)
PROGRAMS   := encd encctl encstat encd-iked ikectl
ifeq ($(BUILD),release)
SWIFTFLAGS := -c release --static-swift-stdlib
else
SWIFTFLAGS := -c debug
endif
BINPATH     = $(shell $(SWIFT) build $(SWIFTFLAGS) --show-bin-path)

MAN4 := man/enc.4
MAN5 := man/ipsec.conf.5 man/iked.conf.5
MAN8 := man/encd.8 man/encctl.8 man/encstat.8 man/encd-iked.8 man/ikectl.8
DOCS := README.md Docs/counters.md Docs/control-protocol.md Docs/architecture.md Docs/packaging.md Docs/ike.md
EXAMPLES := $(sort $(notdir $(wildcard Rules/examples/*)))

.PHONY: all build install uninstall deb clean-deb

all: build

build:
	for p in $(PROGRAMS); do $(SWIFT) build $(SWIFTFLAGS) --product $$p || exit 1; done

install:
	@bin="$(BINPATH)"; for p in $(PROGRAMS); do \
	    [ -x "$$bin/$$p" ] || { echo "make install: $$bin/$$p is missing; run make (BUILD=$(BUILD)) first" >&2; exit 1; }; done
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man4 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DATADIR)/examples $(DESTDIR)$(DOCDIR)
	install -d -m 0700 $(DESTDIR)$(CONFDIR)
	@# encd-iked's certificates (encd-iked(8) -C): CAs, CRLs, ours, and the private key.
	install -d -m 0755 $(DESTDIR)$(CONFDIR)/iked/ca $(DESTDIR)$(CONFDIR)/iked/crls $(DESTDIR)$(CONFDIR)/iked/certs
	install -d -m 0700 $(DESTDIR)$(CONFDIR)/iked/private
	bin="$(BINPATH)"; for p in $(PROGRAMS); do install -m 0755 "$$bin/$$p" $(DESTDIR)$(SBINDIR)/$$p; done
	install -m 0644 $(MAN4) $(DESTDIR)$(MANDIR)/man4/
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	for u in encd encd-iked; do \
	    sed 's|/usr/sbin/|$(SBINDIR)/|g' Systemd/$$u.service >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service && \
	    chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service || exit 1; done
	install -m 0644 Rules/encd.nft Rules/README.md $(DESTDIR)$(DATADIR)/
	install -m 0644 etc/ipsec.conf $(DESTDIR)$(DATADIR)/ipsec.conf.example
	install -m 0644 etc/iked.conf $(DESTDIR)$(DATADIR)/iked.conf.example
	for e in $(EXAMPLES); do \
	    install -d $(DESTDIR)$(DATADIR)/examples/$$e && \
	    install -m 0644 Rules/examples/$$e/* $(DESTDIR)$(DATADIR)/examples/$$e/ || exit 1; done
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	@# Never overwrite an administrator's configuration.
	if [ -e $(DESTDIR)$(CONFDIR)/ipsec.conf ]; then \
	    echo "make install: keeping the existing $(DESTDIR)$(CONFDIR)/ipsec.conf"; \
	else install -m 0600 etc/ipsec.conf $(DESTDIR)$(CONFDIR)/ipsec.conf; fi

# Removes what install put in place, except /etc/encd/ipsec.conf when it is no longer
# the example (it may hold the administrator's keys), and the state directory.
uninstall:
	for p in $(PROGRAMS); do rm -f $(DESTDIR)$(SBINDIR)/$$p; done
	for m in $(MAN4); do rm -f $(DESTDIR)$(MANDIR)/man4/$$(basename $$m); done
	for m in $(MAN5); do rm -f $(DESTDIR)$(MANDIR)/man5/$$(basename $$m); done
	for m in $(MAN8); do rm -f $(DESTDIR)$(MANDIR)/man8/$$(basename $$m); done
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/encd.service $(DESTDIR)$(SYSTEMDUNITDIR)/encd-iked.service
	for d in ca crls certs private; do rmdir $(DESTDIR)$(CONFDIR)/iked/$$d 2>/dev/null || true; done
	rmdir $(DESTDIR)$(CONFDIR)/iked 2>/dev/null || true
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)
	if cmp -s etc/ipsec.conf $(DESTDIR)$(CONFDIR)/ipsec.conf; then rm -f $(DESTDIR)$(CONFDIR)/ipsec.conf; \
	elif [ -e $(DESTDIR)$(CONFDIR)/ipsec.conf ]; then echo "make uninstall: leaving $(DESTDIR)$(CONFDIR)/ipsec.conf (changed)"; fi
	rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true

deb:
	scripts/build-deb.sh

clean-deb:
	rm -rf .build-deb encd_*_amd64.deb
