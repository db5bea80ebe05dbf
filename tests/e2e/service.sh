#!/usr/bin/env bash
# End to end under the real systemd: a Debian 12 tree (built once with mmdebstrap
# and cached), netlab installed into it by the project's own scripts/install,
# booted with systemd-nspawn in a private network namespace. Prints "E2E OK" when
# every check passed; exits non-zero at the first that did not. Run as root.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${NETLAB_E2E_CACHE:-/var/cache/netlab-e2e}
base="$cache/rootfs"
root="$cache/run-$$"
machine=netlab-e2e-$$
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
say() { echo "== $(date +%T) $*"; }
fail() { echo "E2E FAILED: $*" >&2; exit 1; }

command -v systemd-nspawn >/dev/null && command -v mmdebstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container mmdebstrap >/dev/null; }

mkdir -p "$cache"
if [ ! -x "$base/lib/systemd/systemd" ]; then
  say "building the Debian 12 tree (once; cached in $base)"
  rm -rf "$base.new"
  mmdebstrap --quiet --variant=minbase \
    --include=systemd,systemd-sysv,dbus,iproute2,iptables,procps,iputils-ping,python3,python3-venv,ca-certificates \
    bookworm "$base.new" "$mirror"
  mv "$base.new" "$base"
fi

say "copying the tree and the project"
rm -rf "$root"; cp -a "$base" "$root"
cleanup() { [ -n "${NSPID:-}" ] && { kill "$NSPID" 2>/dev/null || true; wait "$NSPID" 2>/dev/null || true; }; rm -rf "$root" "$cache/$machine.console"; }
trap cleanup EXIT
mkdir -p "$root/root/netlab"
(cd "$repo" && git ls-files -z 2>/dev/null | xargs -0 tar -cf - 2>/dev/null || tar -cf - --exclude=.venv --exclude=.git .) | tar -xf - -C "$root/root/netlab"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# reach the package registries the way this machine does (its CA bundle, which
# may hold a proxy's certificate, and its pip settings)
host_env=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/root/host-ca.crt"
  host_env+=(--setenv=PIP_CERT=/root/host-ca.crt --setenv=REQUESTS_CA_BUNDLE=/root/host-ca.crt)
fi
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy; do
  [ -n "${!var:-}" ] && host_env+=("--setenv=$var=${!var}")
done

say "installing with scripts/install (inside the tree, with the host's network for apt and pip)"
systemd-nspawn -q -D "$root" --register=no --keep-unit "${host_env[@]}" --setenv=PIP_DISABLE_PIP_VERSION_CHECK=1 \
  sh -c 'cd /root/netlab && ./scripts/install' > "$root.install.log" 2>&1 || { tail -30 "$root.install.log"; fail "scripts/install"; }
rm -f "$root.install.log"

say "booting"
systemd-nspawn -D "$root" -M "$machine" --boot --register=no --keep-unit --private-network \
  --console=passive > "$cache/$machine.console" 2>&1 &
NSPID=$!
leader=
for _ in $(seq 200); do leader=$(pgrep -P "$NSPID" -x systemd || true); [ -n "$leader" ] && break; sleep 0.1; done
[ -n "$leader" ] || { cat "$cache/$machine.console"; fail "the container did not boot"; }
C() { nsenter -t "$leader" -a -- "$@"; }
for _ in $(seq 300); do
  state=$(C systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.2
done
say "system state: $state"

say "the service"
C systemctl is-enabled netlab.service | grep -qx enabled || fail "netlab.service is not enabled"
C systemctl is-active netlab.service | grep -qx active || { C journalctl -u netlab --no-pager | tail -30; fail "netlab.service is not active after boot"; }
C systemctl stop netlab.service
C systemctl start netlab.service || fail "systemctl start"
C systemctl show -p StatusText --value netlab.service | grep -q "generation\|no generation" || fail "no STATUS= line"
C systemctl status netlab.service --no-pager | grep -q "Status:" || fail "systemctl status shows no Status"
C systemd-analyze verify /etc/systemd/system/netlab.service > "$root/verify.out" 2>&1 || { cat "$root/verify.out"; fail "systemd-analyze verify"; }
[ -s "$root/verify.out" ] && { cat "$root/verify.out"; fail "systemd-analyze verify said something"; }
C systemd-analyze security netlab.service --no-pager | tail -1

say "a file dropped into /etc/netlab.d"
cat > "$root/etc/netlab.d/lab.yaml" <<'LAB'
version: 1
namespaces: [{name: red}]
interfaces:
  - {name: v-net-0, type: bridge, addresses: [192.168.15.5/24]}
  - {name: veth-red, type: veth, netns: red, addresses: [192.168.15.1/24], peer: {name: veth-red-br, master: v-net-0}}
routes:
  - {netns: red, to: default, via: 192.168.15.5}
LAB
ok=
for _ in $(seq 50); do C ip netns exec red ip -br addr 2>/dev/null | grep -q 192.168.15.1/24 && { ok=1; break; }; sleep 0.1; done
[ -n "$ok" ] || { C journalctl -u netlab --no-pager | tail -30; fail "the file did not reach the kernel within 5 s"; }
C ip netns list | grep -q red || fail "ip netns list in the container does not show red"
ok=
for _ in $(seq 30); do C ip netns exec red ping -c1 -W1 192.168.15.5 >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
[ -n "$ok" ] || { C ip netns exec red ip route; C journalctl -u netlab --no-pager | tail -20; fail "ping across the lab"; }

say "reload"
C systemctl reload netlab.service || fail "systemctl reload"
ok=
for _ in $(seq 50); do [ "$(C systemctl is-active netlab.service || true)" = active ] && { ok=1; break; }; sleep 0.1; done
[ -n "$ok" ] || { C systemctl status netlab.service --no-pager | tail -20; fail "not active again after reload"; }
ok=
for _ in $(seq 50); do C journalctl -u netlab -o cat --no-pager | grep -q "reload requested" && { ok=1; break; }; sleep 0.1; done
[ -n "$ok" ] || fail "the daemon did not see the reload"

say "journal"
ok=
for _ in $(seq 50); do
  C journalctl -u netlab -o json --no-pager 2>/dev/null | grep -q 'change applied' && { ok=1; break; }
  sleep 0.1  # journald may not have the lines yet
done
[ -n "$ok" ] || { C journalctl -u netlab --no-pager | tail -20; fail "no change events in the journal"; }
C journalctl -u netlab -o cat --no-pager | grep '"event": "change applied"' | head -1 | python3 -c 'import json,sys; e=json.loads(sys.stdin.readline()); assert {"generation","netns","kind","name","action","duration_ms"} <= set(e), e' \
  || fail "change events are not JSON with generation/netns/kind/name/action/duration_ms"

say "stop leaves the network up"
C systemctl stop netlab.service
C ip netns exec red ping -c1 -W2 192.168.15.5 >/dev/null || fail "the network went down with the service"
echo "E2E OK"
