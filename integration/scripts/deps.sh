#!/usr/bin/env bash
# Makes sure the real servers Parley's tests and demo talk to are installed.
# As root it installs what is missing with apt-get; otherwise it prints the
# exact command to run.
set -euo pipefail
pkgs=(prosody redis-server kamailio kamailio-tls-modules sip-tester python3-slixmpp openssl lua-unbound)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "Parley needs these Debian packages: ${missing[*]}" >&2
	echo "Run: sudo apt-get update && sudo $cmd" >&2
	exit 1
fi
echo "Installing ${missing[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Another apt run on the machine can hold the lock: retry once.
$cmd >/dev/null || { sleep 5; $cmd >/dev/null; }
