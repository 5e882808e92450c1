//! The one read-only command preflight runs on the node
//! (AWS-RunShellScript): it only reads (`systemctl cat`, `command -v`,
//! IMDSv2, `lsblk`) and prints `key=value` lines, which [`parse`] reads back.

use serde::Serialize;
use std::collections::BTreeMap;

/// The script, fixed: no argument of the operator's reaches the node.
pub const SCRIPT: &str = r#"set -u
has() { if command -v "$1" >/dev/null 2>&1; then echo yes; else echo no; fi; }
echo "lifeboat-probe=1"
if systemctl cat kubelet.service >/dev/null 2>&1; then echo "kubelet_unit=yes"; else echo "kubelet_unit=no"; fi
echo "crictl=$(has crictl)"
echo "kubeadm=$(has kubeadm)"
echo "cloud_init=$(has cloud-init)"
imds=http://169.254.169.254/latest
token=$(curl -s -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$imds/api/token" 2>/dev/null || true)
if [ -n "$token" ] && curl -sf -m 2 -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/instance-id" >/dev/null 2>&1; then
  echo "imdsv2=yes"
  echo "iam_role=$(curl -sf -m 2 -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/iam/security-credentials/" 2>/dev/null | head -n1)"
else
  echo "imdsv2=no"
fi
stores=""
for d in $(lsblk -dno NAME,MODEL 2>/dev/null | awk '/Instance Storage/ {print $1}'); do
  mounts=$(lsblk -no MOUNTPOINT "/dev/$d" 2>/dev/null | awk 'NF' | paste -sd' ' -)
  stores="$stores${stores:+,}$d:$mounts"
done
echo "instance_store=$stores"
"#;

/// What the script saw on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeProbe {
    pub kubelet_unit: bool,
    pub crictl: bool,
    pub kubeadm: bool,
    pub cloud_init: bool,
    pub imdsv2: bool,
    /// The instance profile's role name, as IMDS lists it.
    pub iam_role: Option<String>,
    /// Instance-store devices and where they are mounted (`nvme1n1:/data`).
    pub instance_store: Vec<String>,
}

impl NodeProbe {
    /// Instance-store devices that hold a mounted file system.
    pub fn mounted_instance_store(&self) -> Vec<&str> {
        self.instance_store
            .iter()
            .map(String::as_str)
            .filter(|d| d.split_once(':').is_some_and(|(_, m)| !m.is_empty()))
            .collect()
    }
}

/// Reads the script's output; `None` when it is not the script's (another
/// shell's output, a truncated run).
pub fn parse(output: &str) -> Option<NodeProbe> {
    let values: BTreeMap<&str, &str> = output.lines().filter_map(|l| l.trim_end().split_once('=')).collect();
    values.get("lifeboat-probe")?;
    let yes = |key: &str| values.get(key) == Some(&"yes");
    let text = |key: &str| values.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_string);
    Some(NodeProbe {
        kubelet_unit: yes("kubelet_unit"),
        crictl: yes("crictl"),
        kubeadm: yes("kubeadm"),
        cloud_init: yes("cloud_init"),
        imdsv2: yes("imdsv2"),
        iam_role: text("iam_role"),
        instance_store: text("instance_store").map(|v| v.split(',').map(str::to_string).collect()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_lines_are_read_back() {
        let out = "lifeboat-probe=1\nkubelet_unit=yes\ncrictl=yes\nkubeadm=no\ncloud_init=yes\nimdsv2=yes\n\
                   iam_role=k8s-node\ninstance_store=nvme1n1:/data,nvme2n1:\n";
        let p = parse(out).unwrap();
        assert!(p.kubelet_unit && p.crictl && !p.kubeadm && p.cloud_init && p.imdsv2);
        assert_eq!(p.iam_role.as_deref(), Some("k8s-node"));
        assert_eq!(p.mounted_instance_store(), ["nvme1n1:/data"]);
    }

    #[test]
    fn output_that_is_not_the_scripts_is_refused_and_absent_keys_are_no() {
        assert_eq!(parse("hello\n"), None);
        let p = parse("lifeboat-probe=1\nimdsv2=no\niam_role=\ninstance_store=\n").unwrap();
        assert_eq!(p, NodeProbe::default());
    }

    #[test]
    fn the_script_only_reads() {
        for word in ["rm ", "mv ", "kill", "systemctl start", "systemctl stop", "restart", " > /", ">/etc", "tee "] {
            assert!(!SCRIPT.contains(word), "{word}");
        }
    }
}
