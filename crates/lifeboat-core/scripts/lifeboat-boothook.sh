#cloud-boothook
#!/bin/sh
# lifeboat boot guard: lifeboat launches every replacement and every restore
# drill clone with this user data. cloud-init runs a boothook on every boot
# (cloudinit/handlers/boot_hook.py, PER_ALWAYS), before network-online.target,
# so before kubelet (After=network-online.target). Each boot it
# - fences a drill clone, default deny (below; nothing lifts it);
# - makes kubelet's start conditional on /run/lifeboat/released (a drop-in);
# - installs lifeboat-guard.service, ordered after the mounts and before
#   kubelet, which creates that flag when this boot runs on the state
#   lifeboat chose (the settings below; see /run/lifeboat/guard), else
#   leaves kubelet held for lifeboat's repair;
# - records in /run/lifeboat/status whether systemd took the drop-in.
R="${LIFEBOAT_ROOT:-}"
ROOT_VOLUME='@ROOT_VOLUME@'
DATA_VOLUMES='@DATA_VOLUMES@'
PRIVATE_IP='@PRIVATE_IP@'
FENCE='@FENCE_IPS@'
VPC='@VPC_CIDRS@'
RESOLVER='@RESOLVER@'
SSM_HOSTS='@SSM_HOSTS@'
# The drill fence, default deny, in the mangle table: it runs before filter
# at each hook (NF_IP_PRI_MANGLE < NF_IP_PRI_FILTER), so no ACCEPT that
# kube-proxy or a CNI puts in filter lets through what it drops. Each rule is
# checked back; any failure goes to the status file and the repair refuses
# to release kubelet.
fence=ok fence_reason=""
fence_fail() { [ "$fence" = failed ] || fence_reason="$1"; fence=failed; echo "lifeboat-fence: $1" >&2; }
# rule TOOL CHAIN ARGS...: inserted after the fence's earlier rules, then
# checked (-C: the kernel holds it as given).
rule() {
  t=$1 c=$2 n=0; shift 2
  eval "n=\$((\${N_$t$c:-0} + 1))"
  if ! err=$("$t" -w -t mangle -I "$c" "$n" "$@" -m comment --comment lifeboat-fence 2>&1); then
    fence_fail "$t -t mangle -I $c $n $* refused: $err"
  elif ! err=$("$t" -w -t mangle -C "$c" "$@" -m comment --comment lifeboat-fence 2>&1); then
    fence_fail "$t -t mangle -C $c $*: $err"
  else eval "N_$t$c=\$n"; fi
}
# fence_family TOOL LIVE SELF VPC ENDPOINTS IMDS RESOLVERS LOCAL
fence_family() {
  t=$1
  command -v "$t" >/dev/null 2>&1 || { fence_fail "no $t: the clone is not fenced"; return; }
  for c in OUTPUT FORWARD; do for ip in $2; do rule "$t" "$c" -d "$ip" -j DROP; done; done
  rule "$t" FORWARD -d "$6" -j DROP
  rule "$t" FORWARD -j DROP
  rule "$t" OUTPUT -o lo -j ACCEPT
  rule "$t" OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  for ip in $3 $8 $6; do rule "$t" OUTPUT -d "$ip" -j ACCEPT; done
  for ip in $7; do for p in udp tcp; do rule "$t" OUTPUT -d "$ip" -p "$p" --dport 53 -j ACCEPT; done; done
  for ip in $5; do rule "$t" OUTPUT -d "$ip" -p tcp --dport 443 -j ACCEPT; done
  for net in $4; do rule "$t" OUTPUT -d "$net" -j DROP; done
  rule "$t" OUTPUT -p tcp --dport 443 -j ACCEPT
  rule "$t" OUTPUT -j DROP
  # Listed back: the fence heads each chain, whole, nothing between.
  for c in OUTPUT FORWARD; do
    eval "n=\${N_$t$c:-0}"
    got=$("$t" -w -t mangle -S "$c" 2>/dev/null | grep -v '^-P ' | head -n "$n" | grep -c 'lifeboat-fence')
    [ "$got" = "$n" ] || fence_fail "$t -t mangle -S $c: $got of the fence's $n rules head the chain"
  done
}
if [ -n "$FENCE" ]; then
  if [ -z "$VPC" ] || [ -z "$RESOLVER" ]; then fence_fail "the user data names no VPC network or resolver"; fi
  v4() { for a in "$@"; do case $a in *:*) ;; *) printf '%s ' "$a" ;; esac; done; }
  v6() { for a in "$@"; do case $a in *:*) printf '%s ' "$a" ;; esac; done; }
  # shellcheck disable=SC2046,SC2086
  self=$(hostname -I 2>/dev/null) endpoints=$(for h in $SSM_HOSTS; do getent ahosts "$h"; done 2>/dev/null | awk '{ print $1 }' | sort -u)
  # shellcheck disable=SC2046,SC2086
  fence_family iptables "$(v4 $FENCE)" "$(v4 $self)" "$(v4 $VPC)" "$(v4 $endpoints)" 169.254.169.254 "$RESOLVER 169.254.169.253" ""
  # shellcheck disable=SC2046,SC2086
  fence_family ip6tables "$(v6 $FENCE)" "$(v6 $self)" "$(v6 $VPC)" "$(v6 $endpoints)" fd00:ec2::254 fd00:ec2::253 "fe80::/10 ff02::/16"
fi
G="$R/run/lifeboat"
U="$R/run/systemd/system"
mkdir -p "$G" "$U/kubelet.service.d"
printf "ROOT_VOLUME='%s'\nDATA_VOLUMES='%s'\nPRIVATE_IP='%s'\nFENCE='%s'\n" \
  "$ROOT_VOLUME" "$DATA_VOLUMES" "$PRIVATE_IP" "$FENCE" >"$G/guard.conf"
cat >"$G/guard" <<'LIFEBOAT_GUARD_END'
@GUARD_SCRIPT@
LIFEBOAT_GUARD_END
printf '[Unit]\nWants=lifeboat-guard.service\nAfter=lifeboat-guard.service\nConditionPathExists=/run/lifeboat/released\n' \
  >"$U/kubelet.service.d/50-lifeboat-guard.conf"
cat >"$U/lifeboat-guard.service" <<'EOF'
[Unit]
Description=lifeboat boot guard: kubelet starts only on the state lifeboat chose
After=local-fs.target remote-fs.target network-online.target cloud-init.service cloud-init-network.service
Before=kubelet.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /run/lifeboat/guard check
StandardOutput=journal+console
EOF
# Confirmed, not inferred: systemd must have loaded the drop-in.
reload=failed
for _ in 1 2 3; do
  if systemctl daemon-reload; then reload=ok; break; fi
  sleep 1
done
dropin=not-loaded
case $(systemctl show -p DropInPaths kubelet) in
  *"/run/systemd/system/kubelet.service.d/50-lifeboat-guard.conf"*) dropin=loaded ;;
esac
if [ "$dropin" = loaded ]; then
  guard=held reason="waiting for lifeboat-guard.service"
else
  guard=not-confirmed reason="systemd did not load the guard's drop-in (daemon-reload $reload): kubelet is not held"
  echo "lifeboat-guard: $guard: $reason" >&2
fi
{ printf 'reload=%s\ndropin=%s\nguard=%s\nreason=%s\n' "$reload" "$dropin" "$guard" "$reason"
  [ -z "$FENCE" ] || printf 'fence=%s\nfence_reason=%s\n' "$fence" "$fence_reason"; } >"$G/status"
# kubelet's start job is already queued: the guard's own job runs before it.
systemctl start --no-block lifeboat-guard.service
