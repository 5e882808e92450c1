#!/usr/bin/env bash
# etcd 3.5 for the repair's tests: etcd, etcdctl and etcdutl of Debian trixie's
# etcd-server and etcd-client, unpacked into DIR/usr/bin (default
# /var/tmp/lifeboat-etcd-3.5) without installing anything: bookworm's etcd
# 3.4 has no `snapshot restore --bump-revision` (etcd 3.5.10 and later).
#
#   tests/repair/etcd35.sh [DIR]
set -euo pipefail
dir=${1:-/var/tmp/lifeboat-etcd-3.5}
help=$("$dir/usr/bin/etcdctl" snapshot restore --help 2>&1) || true
[[ $help != *--bump-revision* ]] || exit 0
apt=$dir/apt
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$apt/sources.list"
options=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$apt/lists"
  -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
apt-get "${options[@]}" update -qq
(cd "$apt" && apt-get "${options[@]}" download -qq etcd-server etcd-client)
for deb in "$apt"/etcd-*.deb; do dpkg-deb -x "$deb" "$dir"; done
rm -rf "$apt"
"$dir/usr/bin/etcd" --version | head -n 1
