#!/usr/bin/env bats
# lifeboat's user data (the boot guard and the drill fence) on a systemd-shaped
# fixture node: the boot helper (node_boot, tests/repair/helpers.bash) clears
# /run and the kernel's rules, lets systemd load its units, runs the user data
# as cloud-init runs a #cloud-boothook (rendered by the user_data binary, as
# the handler sends it), then starts what multi-user.target wants (kubelet).
# The stand-in systemctl models drop-ins, daemon-reload and
# ConditionPathExists= (systemd.unit(5)); the stand-in iptables keeps rules.

OLD=127.0.0.10

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

@test "first boot with lifeboat's user data: kubelet is held, skipped rather than failed" {
  node_boot --cloud-init
  [ -f "$FAKE_ROOT/run/systemd/system/kubelet.service.d/50-lifeboat-guard.conf" ]
  [ ! -e "$FAKE_ROOT/run/lifeboat/released" ]
  [ "$(kubelet_state)" = inactive ]
  grep -qF "Condition check resulted in kubelet.service being skipped (ConditionPathExists=/run/lifeboat/released)" "$FAKE_LOG"
  [ -z "$(on_node crictl ps -q)" ]
  # Another start (kubelet's Restart= does not apply to a skipped start; an
  # operator's start) is skipped the same way: only the flag releases it.
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

@test "only the repair releases the guard, and the next boot (the root swap's reboot) is guarded again" {
  node_boot --cloud-init
  [ "$(kubelet_state)" = inactive ]
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = released ]
  [ "$(kubelet_state)" = active ]
  [ -f "$FAKE_ROOT/run/lifeboat/released" ]
  # /run is a tmpfs: the flag is gone, the boothook puts the drop-in back.
  node_boot --cloud-init
  [ ! -e "$FAKE_ROOT/run/lifeboat/released" ]
  [ "$(kubelet_state)" = inactive ]
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = released ]
}

@test "where cloud-init did not run lifeboat's user data there is no guard: kubelet starts, the repair says absent" {
  node_boot
  [ ! -e "$FAKE_ROOT/run/systemd/system/kubelet.service.d/50-lifeboat-guard.conf" ]
  [ "$(kubelet_state)" = active ]
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = absent ]
}

@test "a failed repair leaves the guard holding kubelet" {
  node_boot --cloud-init
  rm "$FAKE_ROOT/etc/kubernetes/admin.conf"
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [ "$(json_field guard)" = held ]
  [ "$(kubelet_state)" = inactive ]
}

@test "a drill clone's fence blocks the live node's IP from the first boot, survives the release, and is back after a reboot" {
  LIVE=10.0.1.4
  # The clone's disk is the live node's: configured for LIVE; it runs on a
  # new address.
  rm -rf "$FIXTURE"
  node_setup
  make_fixture "$LIVE"
  node_host 127.0.0.5 ip-127-0-0-5
  fence_rules() {
    on_node iptables -w -t mangle -C POSTROUTING -d "$LIVE" -m comment --comment lifeboat-fence -j DROP &&
      on_node iptables -w -C OUTPUT -d "$LIVE" -m comment --comment lifeboat-fence -j REJECT &&
      on_node iptables -w -C FORWARD -d "$LIVE" -m comment --comment lifeboat-fence -j REJECT
  }
  rule_count() { { on_node iptables -S; on_node iptables -t mangle -S; } | grep -c lifeboat-fence; }
  node_boot --fence "$LIVE"
  fence_rules
  [ "$(rule_count)" -eq 3 ]
  [ "$(kubelet_state)" = inactive ]
  run on_node curl -sf --max-time 5 -k "https://$LIVE:6443/readyz"
  [ "$status" -eq 7 ]
  run repair --quarantine --timeout 120
  [ "$status" -eq 3 ]
  [ "$(json_field guard)" = released ]
  fence_rules
  [ "$(rule_count)" -eq 3 ]
  run on_node curl -sf --max-time 5 -k "https://$LIVE:6443/readyz"
  [ "$status" -eq 7 ]
  # The kernel's rules are gone with the reboot; the boothook puts them back.
  node_boot --fence "$LIVE"
  fence_rules
  [ "$(rule_count)" -eq 3 ]
  [ "$(kubelet_state)" = inactive ]
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
