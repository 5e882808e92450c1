#cloud-boothook
#!/bin/sh
# lifeboat boot guard: lifeboat launches every replacement and every restore
# drill clone with this user data. cloud-init runs a boothook on every boot,
# before network-online.target, so before kubelet (After=network-online.target):
# kubelet, and with it every static pod, is held until lifeboat's repair
# releases it for this boot (touch /run/lifeboat/released; systemctl start
# kubelet). /run is a tmpfs, so every reboot (the root-volume swap's
# included) is guarded again. On a drill clone the fence below also drops all
# traffic to the live node's addresses, on every boot; nothing releases it.
R="${LIFEBOAT_ROOT:-}"
mkdir -p "$R/run/systemd/system/kubelet.service.d" "$R/run/lifeboat"
printf '[Unit]\nConditionPathExists=/run/lifeboat/released\n' \
  >"$R/run/systemd/system/kubelet.service.d/50-lifeboat-guard.conf"
systemctl daemon-reload || true
for ip in @FENCE_IPS@; do
  iptables -w -t mangle -I POSTROUTING -d "$ip" -m comment --comment lifeboat-fence -j DROP
  iptables -w -I OUTPUT -d "$ip" -m comment --comment lifeboat-fence -j REJECT
  iptables -w -I FORWARD -d "$ip" -m comment --comment lifeboat-fence -j REJECT
done
