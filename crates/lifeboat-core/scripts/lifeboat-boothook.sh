#cloud-boothook
#!/bin/sh
# lifeboat boot guard: lifeboat launches every replacement and every restore
# drill clone with this user data. cloud-init runs a boothook on every boot
# (cloudinit/handlers/boot_hook.py, PER_ALWAYS), before network-online.target,
# so before kubelet (After=network-online.target). Each boot it
# - fences a drill clone off the live node's addresses (nothing lifts it);
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
for ip in @FENCE_IPS@; do
  iptables -w -t mangle -I POSTROUTING -d "$ip" -m comment --comment lifeboat-fence -j DROP
  iptables -w -I OUTPUT -d "$ip" -m comment --comment lifeboat-fence -j REJECT
  iptables -w -I FORWARD -d "$ip" -m comment --comment lifeboat-fence -j REJECT
done
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
printf 'reload=%s\ndropin=%s\nguard=%s\nreason=%s\n' "$reload" "$dropin" "$guard" "$reason" >"$G/status"
# kubelet's start job is already queued: the guard's own job runs before it.
systemctl start --no-block lifeboat-guard.service
