//! The one read-only command preflight runs on the node
//! (AWS-RunShellScript): it only reads (`systemctl cat`, `systemctl show`,
//! `command -v`, IMDSv2, `lsblk`, files under /etc/cloud, /proc and /sys) and
//! prints `key=value` lines, which [`parse`] reads back.

use serde::Serialize;
use std::collections::BTreeMap;

/// The script, fixed: no argument of the operator's reaches the node.
pub const SCRIPT: &str = r#"set -u
has() { if command -v "$1" >/dev/null 2>&1; then echo yes; else echo no; fi; }
echo "lifeboat-probe=1"
if systemctl cat kubelet.service >/dev/null 2>&1; then echo "kubelet_unit=yes"; else echo "kubelet_unit=no"; fi
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
if [ -e /etc/cloud/cloud-init.disabled ]; then echo "cloud_init_disabled_file=yes"; else echo "cloud_init_disabled_file=no"; fi
case " $(cat /proc/cmdline 2>/dev/null) " in
  *" cloud-init=disabled "*) echo "cloud_init_cmdline_disabled=yes" ;;
  *) echo "cloud_init_cmdline_disabled=no" ;;
esac
mcc=""
for f in /etc/cloud/cloud.cfg /etc/cloud/cloud.cfg.d/*.cfg; do
  v=$(sed -n 's/^manual_cache_clean:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$f" 2>/dev/null | tail -n 1)
  [ -z "$v" ] || mcc="$f:$v"
done
echo "manual_cache_clean=$mcc"
if [ -e /var/lib/cloud/instance/manual-clean ]; then echo "manual_clean_marker=yes"; else echo "manual_clean_marker=no"; fi
echo "kubelet_after=$(systemctl show -p After kubelet.service 2>/dev/null | sed -n 's/^After=//p')"
echo "hypervisor=$(cat /sys/hypervisor/type 2>/dev/null)"
serials=""
for s in /sys/class/nvme/*/serial; do
  [ -e "$s" ] || continue
  c=${s%/serial}
  serials="$serials${serials:+,}${c##*/}:$(tr -d ' \n' <"$s" 2>/dev/null)"
done
echo "nvme_serials=$serials"
"#;

/// What the script saw on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeProbe {
    pub kubelet_unit: bool,
    pub cloud_init: bool,
    pub imdsv2: bool,
    /// The instance profile's role name, as IMDS lists it.
    pub iam_role: Option<String>,
    /// Instance-store devices and where they are mounted (`nvme1n1:/data`).
    pub instance_store: Vec<String>,
    /// /etc/cloud/cloud-init.disabled exists.
    pub cloud_init_disabled_file: bool,
    /// /proc/cmdline has `cloud-init=disabled`.
    pub cloud_init_cmdline_disabled: bool,
    /// The last top-level `manual_cache_clean:` of /etc/cloud/cloud.cfg and
    /// cloud.cfg.d/*.cfg (in the order cloud-init merges them), as
    /// `<file>:<value>`.
    pub manual_cache_clean: Option<String>,
    /// /var/lib/cloud/instance/manual-clean, the marker cloud-init leaves
    /// while manual_cache_clean is set.
    pub manual_clean_marker: bool,
    /// kubelet.service's `After=` (`systemctl show -p After kubelet`).
    pub kubelet_after: Option<String>,
    /// /sys/hypervisor/type (`xen` on Xen instance types).
    pub hypervisor: Option<String>,
    /// Each NVMe controller and its serial, spaces removed (`nvme0:vol0123...`).
    pub nvme_serials: Vec<String>,
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

    /// The file that sets manual_cache_clean true, as cloud-init reads a
    /// bool (util.translate_bool: true, 1, on, yes, y; any case, quoted).
    pub fn manual_cache_clean_in(&self) -> Option<&str> {
        let (file, value) = self.manual_cache_clean.as_deref()?.rsplit_once(':')?;
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'').to_ascii_lowercase();
        ["true", "1", "on", "yes", "y"].contains(&value.as_str()).then_some(file)
    }

    /// The EBS volumes the NVMe serials name: on Nitro a volume's serial is
    /// its id without the hyphen (`vol0123...` is vol-0123...), as the boot
    /// guard reads it.
    pub fn serial_volumes(&self) -> Vec<String> {
        self.nvme_serials
            .iter()
            .filter_map(|s| s.split_once(':').map(|(_, serial)| serial))
            .filter_map(|serial| serial.strip_prefix("vol").filter(|id| !id.is_empty()))
            .map(|id| format!("vol-{id}"))
            .collect()
    }

    /// Whether this is a Xen instance type (no NVMe: its EBS volumes are
    /// xvd devices without a volume serial).
    pub fn is_xen(&self) -> bool {
        self.hypervisor.as_deref().is_some_and(|h| h.eq_ignore_ascii_case("xen"))
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
        cloud_init: yes("cloud_init"),
        imdsv2: yes("imdsv2"),
        iam_role: text("iam_role"),
        instance_store: text("instance_store").map(|v| v.split(',').map(str::to_string).collect()).unwrap_or_default(),
        cloud_init_disabled_file: yes("cloud_init_disabled_file"),
        cloud_init_cmdline_disabled: yes("cloud_init_cmdline_disabled"),
        manual_cache_clean: text("manual_cache_clean"),
        manual_clean_marker: yes("manual_clean_marker"),
        kubelet_after: text("kubelet_after"),
        hypervisor: text("hypervisor"),
        nvme_serials: text("nvme_serials").map(|v| v.split(',').map(str::to_string).collect()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_lines_are_read_back() {
        let out = "lifeboat-probe=1\nkubelet_unit=yes\ncloud_init=yes\nimdsv2=no\n\
                   iam_role=k8s-node\ninstance_store=nvme1n1:/data,nvme2n1:\n";
        let p = parse(out).unwrap();
        assert!(p.kubelet_unit && p.cloud_init && !p.imdsv2);
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
    fn the_boot_guards_needs_are_read_back() {
        let out = "lifeboat-probe=1\ncloud_init_disabled_file=yes\ncloud_init_cmdline_disabled=no\n\
                   manual_cache_clean=/etc/cloud/cloud.cfg.d/99-keep.cfg:True\nmanual_clean_marker=yes\n\
                   kubelet_after=network-online.target system.slice\nhypervisor=\n\
                   nvme_serials=nvme0:vol0123456789abcdef0,nvme1:AWS1234,nvme2:\n";
        let p = parse(out).unwrap();
        assert!(p.cloud_init_disabled_file && !p.cloud_init_cmdline_disabled && p.manual_clean_marker);
        assert_eq!(p.manual_cache_clean_in(), Some("/etc/cloud/cloud.cfg.d/99-keep.cfg"));
        assert_eq!(p.kubelet_after.as_deref(), Some("network-online.target system.slice"));
        assert_eq!(p.hypervisor, None);
        assert!(!p.is_xen());
        // Instance store (AWS...) and an empty serial name no volume.
        assert_eq!(p.serial_volumes(), ["vol-0123456789abcdef0"]);
    }

    #[test]
    fn manual_cache_clean_is_true_as_cloud_init_reads_a_bool() {
        for (value, set) in
            [("true", true), ("\"yes\"", true), ("On", true), ("1", true), ("false", false), ("no", false)]
        {
            let p =
                NodeProbe { manual_cache_clean: Some(format!("/etc/cloud/cloud.cfg:{value}")), ..NodeProbe::default() };
            assert_eq!(p.manual_cache_clean_in().is_some(), set, "{value}");
        }
        assert_eq!(NodeProbe::default().manual_cache_clean_in(), None);
    }

    #[test]
    fn the_script_only_reads() {
        for word in ["rm ", "mv ", "kill", "systemctl start", "systemctl stop", "restart", " > /", ">/etc", "tee "] {
            assert!(!SCRIPT.contains(word), "{word}");
        }
    }
}
