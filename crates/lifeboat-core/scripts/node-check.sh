#!/usr/bin/env bash
# Sent to a relaunched node over SSM Run Command: reports the node's private
# IP (from IMDSv2) and kubelet's state as one JSON line. The full control-plane
# repair replaces this script; its last line stays the machine-readable result.
set -euo pipefail
imds=http://169.254.169.254/latest
token=$(curl -sf -X PUT "$imds/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' || true)
ip=$(curl -sf -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/local-ipv4" || echo unknown)
kubelet=$(systemctl is-active kubelet 2>/dev/null || true)
printf '{"result":"checked","ip":"%s","kubelet":"%s"}\n' "$ip" "${kubelet:-unknown}"
