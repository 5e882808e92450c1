#!/usr/bin/env bats
# lifeboat's user data (the boot guard and the drill fence) on a systemd-shaped
# fixture node: the boot helper (node_boot, tests/repair/helpers.bash) clears
# /run and the kernel's rules, lays out this boot's NVMe devices and mounts
# (boot_devices), lets systemd load its units and queue kubelet's start, runs
# the user data as cloud-init runs a #cloud-boothook (rendered by the
# user_data binary, as the handler sends it), then runs the queued jobs:
# lifeboat-guard.service, then kubelet. The stand-in systemctl models
# drop-ins, daemon-reload, ConditionPathExists=, jobs and their ordering,
# oneshot services and their console output (systemd.unit(5),
# systemd.service(5), systemd.exec(5)); the stand-in iptables keeps rules.

OLD=127.0.0.10
ROOT_VOL=vol-0a1b2c3d4e5f60001  # the node's preserved root, which the swap puts in
IMAGE_VOL=vol-0f0e0d0c0b0a90002 # the root a launch from the image gets
DATA_VOL=vol-0d0d0d0d0d0d00003  # the data volume that holds etcd's data
INSTANCE=i-0123456789abcdef0    # node_boot's instance
NEXT=i-0fedcba9876543210        # the next replacement
# The user data of a replacement on the kept interface: it must boot from
# ROOT_VOL, with DATA_VOL attached, on OLD.
SELF_RELEASE=(--root-volume "$ROOT_VOL" --data "$DATA_VOL=/dev/sdf" --ip "$OLD")

setup() {
  load helpers
  node_setup
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
}

teardown() {
  node_teardown
}

kubelet_state() { on_node systemctl is-active kubelet || true; }
marker() { cat "$FAKE_ROOT/var/lib/lifeboat/released-instance" 2>/dev/null || true; }

# assert_held REASON: kubelet never ran this boot, and the guard says why on
# the console and in its status file.
assert_held() {
  [ "$(kubelet_state)" = inactive ]
  [ -z "$(on_node crictl ps -q)" ]
  [ ! -e "$FAKE_ROOT/run/lifeboat/released" ]
  [ "$(guard_status guard)" = held ]
  [ "$(guard_status reason)" = "$1" ]
  [ "$(console_guard)" = "lifeboat-guard: held: $1" ]
}

# The replacement lifeboat launched from the image, its data volume (etcd's
# data) attached, then its reboot after CreateReplaceRootVolumeTask put the
# old root in.
launch_and_swap() {
  etcd_volume "$DATA_VOL"
  node_volumes "$IMAGE_VOL" "$DATA_VOL"
  node_boot "${SELF_RELEASE[@]}"
  assert_held "booted from $IMAGE_VOL, not $ROOT_VOL"
  node_volumes "$ROOT_VOL" "$DATA_VOL"
}

@test "first boot with lifeboat's user data: kubelet is held, skipped rather than failed" {
  node_boot --cloud-init
  [ -f "$FAKE_ROOT/run/systemd/system/kubelet.service.d/50-lifeboat-guard.conf" ]
  assert_held "no self-release settings: lifeboat's repair releases it"
  [ "$(guard_status dropin)" = loaded ]
  grep -qF "Condition check resulted in kubelet.service being skipped (ConditionPathExists=/run/lifeboat/released)" "$FAKE_LOG"
  # Another start (kubelet's Restart= does not apply to a skipped start; an
  # operator's start) is skipped the same way: the guard already decided.
  on_node systemctl start kubelet
  on_node systemctl restart kubelet
  [ "$(kubelet_state)" = inactive ]
  [ -z "$(on_node crictl ps -q)" ]
}

@test "the guard needs the boothook's daemon-reload: a drop-in systemd has not loaded does nothing" {
  node_boot
  on_node systemctl stop kubelet
  mkdir -p "$FAKE_ROOT/run/systemd/system/kubelet.service.d"
  printf '[Unit]\nConditionPathExists=/run/lifeboat/released\n' >"$FAKE_ROOT/run/systemd/system/kubelet.service.d/50-lifeboat-guard.conf"
  run on_node systemctl start kubelet
  [[ $output == *"drop-ins of kubelet.service changed on disk. Run 'systemctl daemon-reload'"* ]]
  [ "$(kubelet_state)" = active ]
  on_node systemctl stop kubelet
  on_node systemctl daemon-reload
  on_node systemctl start kubelet
  [ "$(kubelet_state)" = inactive ]
}

@test "guarded on the image root's first boot: it is not the root lifeboat swaps in" {
  etcd_volume "$DATA_VOL"
  node_volumes "$IMAGE_VOL" "$DATA_VOL"
  node_boot "${SELF_RELEASE[@]}"
  assert_held "booted from $IMAGE_VOL, not $ROOT_VOL"
  [ -z "$(marker)" ]
  # The guard ran before kubelet's start job, as its ordering says.
  guard=$(grep -n "^systemd: Finished lifeboat-guard.service" "$FAKE_LOG" | cut -d: -f1)
  skipped=$(grep -n "^systemd: kubelet.service: Condition check" "$FAKE_LOG" | cut -d: -f1)
  ((guard < skipped))
}

@test "self-released after the swap's reboot: root, data volume, mounts, etcd's data and IP as lifeboat chose" {
  launch_and_swap
  node_boot "${SELF_RELEASE[@]}"
  [ "$(kubelet_state)" = active ]
  [ "$(guard_status guard)" = self-released ]
  [ "$(console_guard)" = "lifeboat-guard: self-released: booted from $ROOT_VOL on $OLD, etcd's data in place" ]
  [ "$(marker)" = "$INSTANCE" ]
  guard=$(grep -n "^systemd: Finished lifeboat-guard.service" "$FAKE_LOG" | tail -n 1 | cut -d: -f1)
  started=$(grep -n "^systemd: Started kubelet.service" "$FAKE_LOG" | cut -d: -f1)
  ((guard < started))
  # The repair, if it runs, finds nothing to do and says who released kubelet.
  before=$(tree_sum)
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"ok","step":"verify",'* ]]
  [ "$(json_field guard)" = self-released ]
  [ "$(json_field changed)" = "[]" ]
  [ "$(tree_sum)" == "$before" ]
}

@test "still held after the swap when another root is in (a fallback's new root, or no NVMe serials on a Xen type)" {
  launch_and_swap
  node_volumes vol-0c0c0c0c0c0c00004 "$DATA_VOL"
  node_boot "${SELF_RELEASE[@]}"
  assert_held "booted from vol-0c0c0c0c0c0c00004, not $ROOT_VOL"
  rm "$FAKE_NODE/host/volumes"
  node_boot "${SELF_RELEASE[@]}"
  assert_held "booted from a disk without an NVMe volume serial, not $ROOT_VOL"
  [ -z "$(marker)" ]
}

@test "still held when a data volume is missing" {
  launch_and_swap
  node_volumes "$ROOT_VOL"
  node_boot "${SELF_RELEASE[@]}"
  assert_held "data volume $DATA_VOL (/dev/sdf) is not attached"
}

@test "still held when a mount at or above etcd's data dir is missing" {
  launch_and_swap
  echo /var/lib/etcd >"$FAKE_NODE/host/mount-fails"
  node_boot "${SELF_RELEASE[@]}"
  assert_held "/var/lib/etcd is not mounted (fstab: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${DATA_VOL/-/})"
}

@test "still held when etcd's data dir holds no member" {
  launch_and_swap
  rm -rf "$FAKE_ROOT/var/lib/etcd/member"
  node_boot "${SELF_RELEASE[@]}"
  assert_held "etcd's data dir /var/lib/etcd holds no member (no member/snap/db)"
  mkdir -p "$FAKE_ROOT/var/lib/etcd/member/snap" && echo data >"$FAKE_ROOT/var/lib/etcd/member/snap/db"
  node_boot "${SELF_RELEASE[@]}"
  assert_held "etcd's data dir /var/lib/etcd holds no member (no member/wal/*.wal)"
}

@test "still held on another IP: the repair moves the node" {
  launch_and_swap
  node_host 127.0.0.77 ip-127-0-0-77
  node_boot "${SELF_RELEASE[@]}"
  assert_held "the host is not on $OLD"
  # Nor on the address lifeboat expected when the disk names another.
  node_boot --root-volume "$ROOT_VOL" --data "$DATA_VOL=/dev/sdf" --ip 127.0.0.77
  assert_held "the node is configured for $OLD, not 127.0.0.77"
}

@test "still held when kubelet would register under another name, until the repair pinned it; or with an expired certificate" {
  node_host "$OLD" ip-127-0-0-10
  launch_and_swap
  node_boot "${SELF_RELEASE[@]}"
  assert_held "kubelet would register as ip-127-0-0-10, the node is k8s-master: the repair pins the name"
  run repair --timeout 120
  [ "$status" -eq 3 ]
  [ "$(json_field guard)" = released ]
  grep -qF -- "--hostname-override=k8s-master" "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env"
  # The pin is on the disk: the next replacement releases itself.
  node_volumes "$IMAGE_VOL" "$DATA_VOL"
  node_boot --instance "$NEXT" "${SELF_RELEASE[@]}"
  assert_held "booted from $IMAGE_VOL, not $ROOT_VOL"
  node_volumes "$ROOT_VOL" "$DATA_VOL"
  node_boot --instance "$NEXT" "${SELF_RELEASE[@]}"
  [ "$(guard_status guard)" = self-released ]
  [ "$(kubelet_state)" = active ]
  [ "$(marker)" = "$NEXT" ]
  # A certificate that expired keeps a replacement held: the repair names the fix.
  cert_days apiserver-etcd-client -1
  node_boot --instance i-0aaaaaaaaaaaaaaaa "${SELF_RELEASE[@]}"
  assert_held "expired certificates: /etc/kubernetes/pki/apiserver-etcd-client.crt "
}

@test "a name pinned as --hostname-override NAME in a single-quoted value releases itself, as the repair reads it" {
  node_host "$OLD" ip-127-0-0-10
  printf "KUBELET_KUBEADM_ARGS='--container-runtime-endpoint unix:///var/run/containerd/containerd.sock --hostname-override k8s-master'\n" \
    >"$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env"
  launch_and_swap
  node_boot "${SELF_RELEASE[@]}"
  [ "$(guard_status guard)" = self-released ]
  [ "$(kubelet_state)" = active ]
  # The repair agrees: nothing to pin.
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field changed)" = "[]" ]
}

@test "an ordinary reboot after a completed recovery starts kubelet; the next replacement on the same disk is held again" {
  node_boot --cloud-init
  [ "$(kubelet_state)" = inactive ]
  mkdir -p "$FAKE_ROOT/dev" && : >"$FAKE_ROOT/dev/console"
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = released ]
  [ "$(json_field guard_reason)" = "released by lifeboat-repair for $INSTANCE" ]
  [ "$(guard_status guard)" = released ]
  [ "$(marker)" = "$INSTANCE" ]
  # On the console too, after the boot's held: `lifeboat status` reads the last line.
  [ "$(tail -n 1 "$FAKE_ROOT/dev/console")" = "lifeboat-guard: released: released by lifeboat-repair for $INSTANCE" ]
  # A reboot of the same instance: /run is new, the marker on its disk is not.
  node_boot --cloud-init
  [ "$(kubelet_state)" = active ]
  [ "$(guard_status guard)" = self-released ]
  [ "$(console_guard)" = "lifeboat-guard: self-released: released before for $INSTANCE; etcd's data is in place" ]
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = self-released ]
  # The next replacement boots from the same disk: another instance.
  node_boot --cloud-init --instance "$NEXT"
  assert_held "released for $INSTANCE, not for $NEXT; no self-release settings: lifeboat's repair releases it"
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = released ]
  [ "$(marker)" = "$NEXT" ]
}

@test "a later boot whose checks fail stays held and says why; once they pass it starts kubelet" {
  launch_and_swap
  node_boot "${SELF_RELEASE[@]}"
  [ "$(kubelet_state)" = active ]
  echo /var/lib/etcd >"$FAKE_NODE/host/mount-fails"
  node_boot "${SELF_RELEASE[@]}"
  assert_held "/var/lib/etcd is not mounted (fstab: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${DATA_VOL/-/})"
  # The repair reads the same record, and does not release onto it.
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [ "$(json_field guard)" = held ]
  [ "$(json_field guard_reason)" = "$(guard_status reason)" ]
  rm "$FAKE_NODE/host/mount-fails"
  node_boot "${SELF_RELEASE[@]}"
  [ "$(kubelet_state)" = active ]
  [ "$(guard_status guard)" = self-released ]
}

@test "a failed daemon-reload is reported, not hidden: kubelet was not held" {
  # systemd's manager does not answer the boothook's reload (its own at boot
  # works): the drop-in stays unloaded.
  wrap_tool systemctl <<'SH'
if [[ $1 == daemon-reload && -n ${INSTANCE_ID:-} ]]; then
  echo "Failed to reload daemon: Connection timed out" >&2
  exit 1
fi
exec "$REAL" "$@"
SH
  node_boot --cloud-init 2>"$BATS_TEST_TMPDIR/cloud-init-output"
  grep -qF "lifeboat-guard: not-confirmed: systemd did not load the guard's drop-in (daemon-reload failed): kubelet is not held" \
    "$BATS_TEST_TMPDIR/cloud-init-output"
  [ "$(kubelet_state)" = active ]
  [ "$(guard_status reload)" = failed ]
  [ "$(guard_status dropin)" = not-loaded ]
  [ "$(guard_status guard)" = not-confirmed ]
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = not-confirmed ]
  [ "$(json_field guard_reason)" = "systemd did not load the guard's drop-in (daemon-reload failed): kubelet is not held" ]
}

@test "where cloud-init did not run lifeboat's user data there is no guard: kubelet starts, the repair says not-confirmed" {
  node_boot
  [ ! -e "$FAKE_ROOT/run/systemd/system/kubelet.service.d/50-lifeboat-guard.conf" ]
  [ "$(kubelet_state)" = active ]
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = not-confirmed ]
  [[ $(json_field guard_reason) == "no record of lifeboat's boot guard this boot (/run/lifeboat/status): cloud-init did not run lifeboat's user data" ]]
}

@test "a failed repair leaves the guard holding kubelet" {
  node_boot --cloud-init
  rm "$FAKE_ROOT/etc/kubernetes/admin.conf"
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [ "$(json_field guard)" = held ]
  [ "$(kubelet_state)" = inactive ]
}

@test "an operator releases kubelet with one command, never onto an empty etcd data dir" {
  node_boot --cloud-init
  mv "$FAKE_ROOT/var/lib/etcd/member" "$FAKE_ROOT/var/lib/etcd/member.aside"
  run on_node sh "$FAKE_ROOT/run/lifeboat/guard" release
  [ "$status" -eq 1 ]
  [ "$output" = "lifeboat-guard: refusing to release kubelet: etcd's data dir /var/lib/etcd holds no member (no member/snap/db); etcd would start a new, empty cluster" ]
  [ "$(kubelet_state)" = inactive ]
  mv "$FAKE_ROOT/var/lib/etcd/member.aside" "$FAKE_ROOT/var/lib/etcd/member"
  mkdir -p "$FAKE_ROOT/dev" && : >"$FAKE_ROOT/dev/console"
  run on_node sh "$FAKE_ROOT/run/lifeboat/guard" release
  [ "$status" -eq 0 ]
  [ "$(kubelet_state)" = active ]
  [ "$(guard_status guard)" = released ]
  [ "$(marker)" = "$INSTANCE" ]
  # The console says so too: `lifeboat status` reads the last decision there.
  [ "$(tail -n 1 "$FAKE_ROOT/dev/console")" = "lifeboat-guard: released: released by hand" ]
}

# A drill clone of the node at LIVE (its public address PUBLIC, its IPv6
# LIVE6) in VPC 10.0.0.0/16 + 2600:1f18::/56, whose SSM endpoints are
# interface endpoints in the VPC: the disk is the live node's (configured for
# LIVE), it runs on a new address.
LIVE=10.0.1.4 PUBLIC=203.0.113.7 LIVE6=2600:1f18::4
CLONE=(--fence "$LIVE" --fence "$PUBLIC" --fence "$LIVE6" --vpc 10.0.0.0/16 --vpc 2600:1f18::/56 --region eu-west-1)
drill_clone() { # drill_clone [make-fixture options]
  rm -rf "$FIXTURE"
  node_setup
  make_fixture "$LIVE" "$@"
  node_host 127.0.0.5 ip-127-0-0-5
  printf '%s\n' "ssm.eu-west-1.amazonaws.com 10.0.9.9" "ssmmessages.eu-west-1.amazonaws.com 10.0.9.10" \
    "ec2messages.eu-west-1.amazonaws.com 10.0.9.11" >"$FAKE_NODE/host/dns"
  echo "$DRILL_PROFILE" >"$FAKE_NODE/host/instance-profile"
}
DRILL_PROFILE=arn:aws:iam::123456789012:instance-profile/lifeboat-drill

# verdict [--forward] DST PROTO PORT: what the clone's kernel does to a new
# connection (tests/repair/lib/node.sh packet_verdict).
# shellcheck disable=SC2016
verdict() { on_node bash -c 'source "$0"; packet_verdict "$@"' "$BATS_TEST_DIRNAME/lib/node.sh" "$@"; }

# Everything the fence must do, connection by connection.
assert_fenced() {
  [ "$(guard_status fence)" = ok ]
  local v want args
  while read -r want args; do
    # shellcheck disable=SC2086
    v=$(verdict $args)
    [ "$v" = "$want" ] || { echo "$args: $v, not $want" >&2; return 1; }
  done <<'CONNECTIONS'
DROP 10.0.1.4 tcp 6443
DROP 10.0.1.4 udp 53
DROP 203.0.113.7 tcp 443
DROP 2600:1f18::4 tcp 443
DROP 10.0.1.200 tcp 443
DROP 10.0.0.2 tcp 443
DROP 8.8.8.8 udp 53
DROP 52.94.1.1 tcp 80
DROP 2600:1f18::99 tcp 443
DROP 10.0.9.9 tcp 22
ACCEPT 127.0.0.5 tcp 2379
ACCEPT 127.0.0.1 tcp 2379
ACCEPT 10.0.0.2 udp 53
ACCEPT 10.0.0.2 tcp 53
ACCEPT 169.254.169.253 udp 53
ACCEPT 10.0.9.9 tcp 443
ACCEPT 10.0.9.10 tcp 443
ACCEPT 10.0.9.11 tcp 443
ACCEPT 52.94.1.1 tcp 443
ACCEPT 2a05:d018::1 tcp 443
ACCEPT 169.254.169.254 tcp 80
ACCEPT fd00:ec2::254 tcp 80
ACCEPT fd00:ec2::253 udp 53
DROP --forward 10.0.1.4 tcp 6443
DROP --forward 203.0.113.7 tcp 443
DROP --forward 169.254.169.254 tcp 80
DROP --forward fd00:ec2::254 tcp 80
DROP --forward 52.94.1.1 tcp 443
DROP --forward 10.0.0.2 udp 53
DROP --forward 2a05:d018::1 tcp 443
CONNECTIONS
}

# shellcheck disable=SC2030 # bats' run sets status
@test "a drill clone is fenced default-deny from the first boot, IPv4 and IPv6, and stays so after the release and a reboot" {
  drill_clone
  node_boot "${CLONE[@]}"
  assert_fenced
  # The live node's addresses are dropped ahead of any allow rule.
  [ "$(on_node iptables -t mangle -S OUTPUT | sed -n 2p)" = "-A OUTPUT -d $LIVE/32 -m comment --comment lifeboat-fence -j DROP" ]
  [ "$(on_node ip6tables -t mangle -S FORWARD | sed -n 2p)" = "-A FORWARD -d $LIVE6/128 -m comment --comment lifeboat-fence -j DROP" ]
  assert_held "a fenced drill clone: only lifeboat's repair releases it"
  run on_node curl -sf --max-time 5 -k "https://$LIVE:6443/readyz"
  [ "$status" -eq 28 ]
  run repair --quarantine --timeout 120
  [ "$status" -eq 3 ]
  [ "$(json_field guard)" = released ]
  # Proven from the clone before the release, and reported.
  [ "$(json_field isolation)" = "{\"live_unreachable\": [\"$LIVE:6443\", \"$LIVE:2379\", \"$PUBLIC:6443\", \"$PUBLIC:2379\", \"$LIVE6:6443\", \"$LIVE6:2379\"], \"instance_profile\": \"$DRILL_PROFILE\"}" ]
  assert_fenced
  # The kernel's rules are gone with the reboot; the boothook puts them back,
  # and a clone never releases itself, even released before, even handed
  # self-release settings.
  node_boot "${CLONE[@]}" --root-volume "$ROOT_VOL" --ip 127.0.0.5
  assert_fenced
  assert_held "a fenced drill clone: only lifeboat's repair releases it"
  grep -qxF "ROOT_VOLUME=''" "$FAKE_ROOT/run/lifeboat/guard.conf"
}

# assert_unfenced REASON: the boothook recorded the fence's failure (REASON,
# a glob), and the repair refuses to release kubelet for it.
assert_unfenced() {
  [ "$(guard_status fence)" = failed ]
  # shellcheck disable=SC2053
  [[ $(guard_status fence_reason) == $1 ]]
  assert_held "a fenced drill clone: only lifeboat's repair releases it"
  run repair --quarantine --timeout 120
  # shellcheck disable=SC2031 # bats' run sets status
  [ "$status" -eq 18 ]
  [ "$(json_field step)" = release ]
  # shellcheck disable=SC2027
  [[ $(json_field message) == "the drill fence is not in place this boot ("$1"): refusing to release kubelet" ]]
  [ ! -e "$FAKE_ROOT/run/lifeboat/released" ]
  [ "$(kubelet_state)" = inactive ]
}

@test "a clone without ip6tables is not released" {
  drill_clone
  rm "$STOCK_BIN/ip6tables"
  node_boot "${CLONE[@]}"
  assert_unfenced "no ip6tables: the clone is not fenced"
}

@test "a clone whose kernel refuses a fence rule is not released" {
  drill_clone
  # A kernel without xt_conntrack: the match cannot be loaded.
  wrap_tool iptables <<'BODY'
[[ " $* " == *" -I "*" conntrack "* ]] && { echo "iptables: No chain/target/match by that name." >&2; exit 1; }
exec "$REAL" "$@"
BODY
  node_boot "${CLONE[@]}"
  assert_unfenced "iptables -t mangle -I OUTPUT 4 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT refused: iptables: No chain/target/match by that name."
}

@test "a clone whose fence does not list back as applied is not released" {
  drill_clone
  # The insert says done, the rule is not there.
  wrap_tool ip6tables <<'BODY'
[[ " $* " == *" -I OUTPUT "*" 443 "* ]] && exit 0
exec "$REAL" "$@"
BODY
  node_boot "${CLONE[@]}"
  assert_unfenced "ip6tables -t mangle -C OUTPUT -p tcp --dport 443 -j ACCEPT: ip6tables: Bad rule (does a matching rule exist in that chain?)."
  # A rule put ahead of the fence while it was applied is found by the
  # listing.
  drill_clone
  wrap_tool iptables <<'BODY'
[[ " $* " == *" -C FORWARD -j DROP "* ]] && "$REAL" -w -t mangle -I FORWARD -j ACCEPT
exec "$REAL" "$@"
BODY
  node_boot "${CLONE[@]}"
  assert_unfenced "iptables -t mangle -S FORWARD: * of the fence's * rules head the chain"
}

# A clone whose kubeconfigs name the control plane k8s.example.com, which
# /etc/hosts does not map: the VPC's DNS answers with the live node's address.
named_clone() {
  drill_clone --endpoint k8s.example.com
  sed -i '/k8s\.example\.com/d' "$FAKE_ROOT/etc/hosts"
  echo "k8s.example.com $LIVE" >>"$FAKE_NODE/host/dns"
  node_boot "${CLONE[@]}"
  [ "$(on_node getent hosts k8s.example.com)" = "$LIVE        k8s.example.com" ]
}

@test "a drill clone's names resolve to itself: the repair pins each name of its kubeconfigs in /etc/hosts" {
  named_clone
  run repair --quarantine --timeout 120
  [ "$status" -eq 3 ]
  [ "$(head -n 1 "$FAKE_ROOT/etc/hosts")" = "127.0.0.5 k8s.example.com" ]
  [[ $(json_field changed) == *"/etc/hosts: k8s.example.com pinned to 127.0.0.5"* ]]
  [ "$(on_node getent ahosts k8s.example.com | awk '{ print $1 }' | sort -u)" = 127.0.0.5 ]
  # kubelet and kubectl reach the clone's own apiserver by that name.
  run health k8s-master --timeout 30
  [ "$status" -eq 0 ]
}

@test "a drill clone whose name also resolves elsewhere is not released" {
  named_clone
  # A load balancer's address kept in /etc/hosts: glibc's files backend
  # returns every line that names the host.
  echo "10.0.1.100 k8s.example.com" >>"$FAKE_ROOT/etc/hosts"
  run repair --quarantine --timeout 120
  [ "$status" -eq 18 ]
  [ "$(json_field message)" = "k8s.example.com resolves to 10.0.1.100 127.0.0.5, not only to the clone's 127.0.0.5: refusing to release kubelet (see /etc/hosts)" ]
  [ ! -e "$FAKE_ROOT/run/lifeboat/released" ]
}

@test "a clone proves it is cut off: the live node does not answer, the credentials are the drill's, before the release" {
  drill_clone
  node_boot "${CLONE[@]}"
  # The fence's rules for the apiserver's port are gone (say, flushed by
  # hand), and the live node listens: the repair finds out from the clone.
  echo "$LIVE:6443" >"$FAKE_NODE/host/answers"
  on_node iptables -w -t mangle -F OUTPUT
  run repair --quarantine --timeout 120
  [ "$status" -eq 18 ]
  [ "$(json_field message)" = "the live node's $LIVE:6443 answers from the clone (curl exit 0): refusing to release kubelet" ]
  [ ! -e "$FAKE_ROOT/run/lifeboat/released" ]
  # Without an instance profile the clone cannot say whose credentials it has.
  node_boot "${CLONE[@]}"
  rm "$FAKE_NODE/host/instance-profile"
  run repair --quarantine --timeout 120
  [ "$status" -eq 18 ]
  [ "$(json_field message)" = "the instance metadata names no instance profile (iam/info): cannot tell whose credentials the clone has" ]
}

@test "a quarantined repair without a fence this boot does not release kubelet" {
  drill_clone
  node_boot --cloud-init
  run repair --quarantine --timeout 120
  [ "$status" -eq 18 ]
  [ "$(json_field message)" = "the drill fence is not in place this boot (no fence recorded in /run/lifeboat/status): refusing to release kubelet" ]
}

@test "the stand-in iptables refuses what iptables refuses: REJECT outside the filter table, a rule that is not there" {
  run on_node iptables -w -t mangle -I POSTROUTING -d 10.0.1.4 -j REJECT
  [ "$status" -eq 1 ]
  run on_node iptables -w -C OUTPUT -d 10.0.1.4 -j REJECT
  [ "$status" -eq 1 ]
  [[ $output == *"Bad rule (does a matching rule exist in that chain?)"* ]]
  on_node iptables -w -I OUTPUT -d 10.0.1.4 -m comment --comment lifeboat-fence -j REJECT
  on_node iptables -w -C OUTPUT -d 10.0.1.4/32 -m comment --comment lifeboat-fence -j REJECT --reject-with icmp-port-unreachable
  on_node iptables -w -D OUTPUT -d 10.0.1.4 -m comment --comment lifeboat-fence -j REJECT
  run on_node iptables -w -D OUTPUT -d 10.0.1.4 -m comment --comment lifeboat-fence -j REJECT
  [ "$status" -eq 1 ]
}

@test "the stand-ins iptables and ip6tables parse, print and refuse as the real ones" {
  # Printed as iptables-save prints: addresses masked to their prefix, the
  # protocol's match loaded by -p, conntrack states in the kernel's order.
  on_node iptables -w -t mangle -A OUTPUT -d 10.0.7.9/16 -p udp --dport 53 -j ACCEPT
  on_node iptables -w -t mangle -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  on_node ip6tables -w -t mangle -A FORWARD -d 2600:1F18:0:0::0004 -j DROP
  [ "$(on_node iptables -t mangle -S OUTPUT)" = "-P OUTPUT ACCEPT
-A OUTPUT -d 10.0.0.0/16 -p udp -m udp --dport 53 -j ACCEPT
-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" ]
  [ "$(on_node ip6tables -t mangle -S FORWARD)" = "-P FORWARD ACCEPT
-A FORWARD -d 2600:1f18::4/128 -j DROP" ]
  on_node iptables -w -t mangle -C OUTPUT -d 10.0.0.0/16 -p udp -m udp --dport 53 -j ACCEPT
  [ "$(on_node iptables -t mangle -S FORWARD)" = "-P FORWARD ACCEPT" ]
  # Refused: each family's addresses only, -i on the way out, --dport without
  # its protocol, an unknown connection state.
  for refused in "iptables -t mangle -A OUTPUT -d fd00:ec2::254 -j ACCEPT" \
    "ip6tables -t mangle -A OUTPUT -d 169.254.169.254 -j ACCEPT" \
    "iptables -t mangle -A OUTPUT -d 10.0.0.300 -j DROP" \
    "iptables -t mangle -A OUTPUT -i eth0 -j DROP" \
    "iptables -t mangle -A PREROUTING -o lo -j DROP" \
    "iptables -t mangle -A OUTPUT --dport 443 -j ACCEPT" \
    "iptables -t mangle -A OUTPUT -m conntrack --ctstate OPEN -j ACCEPT"; do
    # shellcheck disable=SC2086
    run on_node $refused
    [ "$status" -eq 2 ] || { echo "accepted: $refused" >&2; return 1; }
  done
  [ "$(on_node iptables -t mangle -S OUTPUT | wc -l)" -eq 3 ]
}

# A time of the result line, "" when the field is left out.
result_time() { python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$(last_json)" "$1"; }
# kubelet's last start this boot, as systemd keeps it (the stand-in's record).
kubelet_entered() { date -u -d "@$(($(cat "$FAKE_NODE/systemd/kubelet.entered") / 1000000))" +%Y-%m-%dT%H:%M:%SZ; }

@test "the repair reports by the node's clocks when kubelet was released, started and the apiserver ready; unknown times are left out" {
  # Held: nothing was released, kubelet never ran, nothing answered.
  node_boot --cloud-init
  mv "$FAKE_ROOT/etc/kubernetes/admin.conf" "$BATS_TEST_TMPDIR/admin.conf"
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [ "$(json_field guard)" = held ]
  [[ $(last_json) != *_at\"* ]]
  mv "$BATS_TEST_TMPDIR/admin.conf" "$FAKE_ROOT/etc/kubernetes/admin.conf"
  # The repair releases it: its own record, kubelet's start, its first /readyz.
  node_boot --cloud-init
  before=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  run repair --timeout 120
  after=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = released ]
  [ "$(result_time released_at)" = "$(guard_status at)" ]
  [ "$(result_time kubelet_started_at)" = "$(kubelet_entered)" ]
  ready=$(result_time ready_at)
  [[ $ready =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]]
  [[ ! $ready < $(result_time kubelet_started_at) && ! $ready > $after && ! $(result_time released_at) < $before ]]
  # The next boot releases itself: the guard's record, kubelet's start at
  # boot, the apiserver container's start (it ran before the repair came).
  sleep 1
  node_boot --cloud-init
  [ "$(guard_status guard)" = self-released ]
  apiserver=$(running_containers kube-apiserver)
  sleep 1
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = self-released ]
  [ "$(result_time released_at)" = "$(guard_status at)" ]
  [ "$(result_time kubelet_started_at)" = "$(kubelet_entered)" ]
  [ "$(result_time ready_at)" = "$(date -u -d "$(cat "$FAKE_NODE/containers/$apiserver/started")" +%Y-%m-%dT%H:%M:%SZ)" ]
  [[ $(result_time ready_at) < $(date -u +%Y-%m-%dT%H:%M:%SZ) ]]
  # No guard this boot: no release to report.
  node_boot
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = not-confirmed ]
  [ -z "$(result_time released_at)" ]
  [ "$(result_time kubelet_started_at)" = "$(kubelet_entered)" ]
}
