#!/usr/bin/env bats
# After an image fallback (--from-image) the repair bumps etcd's revision,
# against the real etcd: the etcd image's etcdctl run once by containerd's
# ctr (tests/repair/bin/ctr) while etcd is stopped. etcd 3.5.10 and later can
# (trixie's 3.5, tests/repair/etcd35.sh); Debian bookworm's 3.4 cannot, as an
# older image.

ETCD35=${LIFEBOAT_TEST_ETCD35:-/var/tmp/lifeboat-etcd-3.5/usr/bin}

setup() {
  load helpers
  command -v etcd >/dev/null || skip "etcd is not installed (apt-get install etcd-server)"
  node_setup
}

teardown() {
  [[ -z ${WATCHER:-} ]] || kill "$WATCHER" 2>/dev/null || true
  node_teardown
}

# The node's etcd (and its image's etcdctl) is etcd 3.5.
etcd_35() {
  [[ -x $ETCD35/etcdutl ]] || skip "no etcd 3.5 in $ETCD35 (tests/repair/etcd35.sh)"
  export FAKE_ETCD_DIR=$ETCD35
}

revision() { test_etcdctl "${1:-127.0.0.2}" get /registry/none -w json | sed 's/.*"revision":\([0-9]*\).*/\1/'; }
# etcd answers (each crictl call lets the model's kubelet restart it).
etcd_up() {
  local _
  for _ in $(seq 1 100); do
    running_containers etcd >/dev/null
    test_etcdctl 127.0.0.2 endpoint health --dial-timeout=1s >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# The old instance runs on 127.0.0.2; its image is etcd's data as it was
# (etcd stopped for the copy, kubelet starts it again); the cluster goes on.
old_instance_and_image() {
  make_fixture 127.0.0.2
  node_host 127.0.0.2 k8s-master
  node_boot
  etcd_up
  test_etcdctl 127.0.0.2 put /registry/configmaps/default/kept before-the-image >/dev/null
  on_node crictl stop --timeout 10 "$(running_containers etcd)" >/dev/null
  cp -a "$FAKE_ROOT/var/lib/etcd" "$FIXTURE/image-etcd"
  etcd_up
  IMAGE_REV=$(revision)
}

# Its replacement, on the same address, from the image.
replacement_from_image() {
  node_boot --cloud-init --instance i-0fedcba9876543210
  rm -rf "$FAKE_ROOT/var/lib/etcd"
  cp -a "$FIXTURE/image-etcd" "$FAKE_ROOT/var/lib/etcd"
}

@test "from an image, etcd's revision is bumped: a watcher from before is told 'compacted' and relists above all it saw" {
  etcd_35
  old_instance_and_image
  for i in 1 2 3; do test_etcdctl 127.0.0.2 put "/registry/configmaps/default/lost-$i" after-the-image >/dev/null; done
  # A watcher (a kubelet's) follows the cluster from its newest revision.
  from=$(($(revision) + 1))
  test_etcdctl 127.0.0.2 watch --prefix /registry/configmaps/ --rev "$from" >"$FIXTURE/watch.out" 2>&1 3>&- &
  WATCHER=$!
  test_etcdctl 127.0.0.2 put /registry/configmaps/default/seen watched >/dev/null
  for _ in $(seq 1 50); do grep -qx watched "$FIXTURE/watch.out" && break; sleep 0.2; done
  grep -qx watched "$FIXTURE/watch.out" || { cat "$FIXTURE/watch.out"; false; }
  live_rev=$(revision)
  ((IMAGE_REV < live_rev))

  replacement_from_image
  run repair --from-image --timeout 120
  [ "$status" -eq 3 ]
  [ "$(json_field etcd_revision_bump)" = 1000000000 ]
  [[ $(json_field changed) == *"etcd's revision bumped by 1000000000 and compacted"* ]]
  # The etcd image of the manifest, once, under containerd, the data dir mounted at its path.
  grep -q "^ctr --address /var/run/containerd/containerd.sock --namespace k8s.io run --rm --mount type=bind,src=$FAKE_ROOT/var/lib/etcd,dst=/var/lib/etcd,options=rbind:rw registry.k8s.io/etcd:3.5.15-0 lifeboat-revision-[0-9]* sh -c for t in etcdutl etcdctl; do$" "$FAKE_LOG"
  # The data as it was before the bump, in the backup.
  [ -s "$FAKE_ROOT$(json_field backup)/etcd/member/snap/db" ]
  [ ! -e "$FAKE_ROOT/var/lib/etcd/lifeboat-restore" ]
  [ ! -e "$FAKE_ROOT/var/lib/etcd/lifeboat-member-old" ]
  etcd_up
  # The watcher, reconnected, is told its revision is compacted away...
  for _ in $(seq 1 150); do grep -q 'compacted' "$FIXTURE/watch.out" && break; sleep 0.2; done
  grep -q 'required revision has been compacted' "$FIXTURE/watch.out"
  # ...and relists: the image's data, at a revision above every one it saw.
  rev=$(revision)
  ((rev >= IMAGE_REV + 1000000000 && rev > live_rev))
  [ "$(test_etcdctl 127.0.0.2 get --print-value-only /registry/configmaps/default/kept)" = before-the-image ]
  [ -z "$(test_etcdctl 127.0.0.2 get --print-value-only /registry/configmaps/default/seen)" ]
  # A watch from a revision before the bump is refused; new writes are seen.
  run test_etcdctl 127.0.0.2 watch --prefix /registry/ --rev "$live_rev" --dial-timeout=2s
  [[ $output == *"required revision has been compacted"* ]]
  test_etcdctl 127.0.0.2 put /registry/configmaps/default/new after-the-bump >/dev/null
  [ "$(revision)" -eq $((rev + 1)) ]

  # Once per instance: a second repair finds it done and bumps nothing more.
  run repair --from-image --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field etcd_revision_bump)" = 1000000000 ]
  [ "$(revision)" -eq $((rev + 1)) ]
}

@test "from an image on a new address: the revision bumped before the member moves" {
  etcd_35
  old_instance_and_image
  node_host 127.0.0.3 ip-127-0-0-3
  replacement_from_image
  run repair --from-image --timeout 120
  [ "$status" -eq 3 ]
  [ "$(json_field etcd_revision_bump)" = 1000000000 ]
  read -r client peer _ <"$FIXTURE/ports"
  run test_etcdctl 127.0.0.3 member list
  [[ $output == *", k8s-master, https://127.0.0.3:$peer, https://127.0.0.3:$client, false"* ]]
  [ "$(revision 127.0.0.3)" -ge $((IMAGE_REV + 1000000000)) ]
  [ "$(test_etcdctl 127.0.0.3 get --print-value-only /registry/configmaps/default/kept)" = before-the-image ]
}

@test "an etcd image whose etcdctl has no --bump-revision: the repair says so, etcd's data untouched" {
  old_instance_and_image
  replacement_from_image
  sum=$(sha256sum <"$FAKE_ROOT/var/lib/etcd/member/snap/db")
  run repair --from-image --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field result)" = ok ]
  [ "$(json_field etcd_revision_bump)" = 0 ]
  [[ $(json_field warnings) == *"etcd's revision is the image's, not bumped (no etcdutl or etcdctl in the etcd image has snapshot restore --bump-revision (etcd 3.5.10 and later)): watchers holding newer resource versions may miss changes"* ]]
  grep -q '^ctr .* run --rm ' "$FAKE_LOG"
  [ ! -e "$FAKE_ROOT/var/lib/etcd/lifeboat-restore" ]
  etcd_up
  [ "$(revision)" -eq "$IMAGE_REV" ]
  [ "$(sha256sum <"$FIXTURE/image-etcd/member/snap/db")" = "$(sha256sum <"$FAKE_ROOT$(json_field backup)/etcd/member/snap/db")" ]
  [ -n "$sum" ]
}

@test "without containerd's ctr on the node the repair says it cannot bump, and the old volumes' repair never tries" {
  old_instance_and_image
  replacement_from_image
  rm "$STOCK_BIN/ctr"
  run repair --from-image --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field etcd_revision_bump)" = 0 ]
  [[ $(json_field warnings) == *"not bumped (no ctr (containerd's client) on the node to run the etcd image)"* ]]
  # The same instance on its own volumes: no bump, no etcd_revision_bump.
  ln -s "$BATS_TEST_DIRNAME/bin/ctr" "$STOCK_BIN/ctr"
  : >"$FAKE_LOG"
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [[ $(last_json) != *etcd_revision_bump* ]]
  run ! grep -q '^ctr ' "$FAKE_LOG"
  etcd_up
  [ "$(revision)" -eq "$IMAGE_REV" ]
}
