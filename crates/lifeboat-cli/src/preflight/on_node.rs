//! The checks of what the read-only command saw on the node.

use super::*;

pub(super) fn on_node(n: &NodeFacts) -> Vec<Check> {
    let probe = match &n.probe {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            return vec![Check::warn(
                "on-node",
                format!("the read-only check on the node failed: {e}"),
                "run preflight again once the agent is Online",
            )];
        }
        None => {
            return vec![Check::warn(
                "on-node",
                "not checked: the node is not an Online managed node (kubelet, cloud-init, IMDSv2, NVMe serials)",
                "fix ssm-agent, then run preflight again",
            )];
        }
    };
    let one = |id: &'static str, ok: bool, yes: &str, no: &str, fix: &str| {
        if ok { Check::pass(id, yes) } else { Check::fail(id, no, fix) }
    };
    vec![
        one(
            "kubelet",
            probe.kubelet_unit,
            "kubelet.service is a systemd unit",
            "no kubelet.service unit: lifeboat's boot guard holds kubelet through a systemd drop-in",
            "install kubelet from the Kubernetes packages (it ships kubelet.service)",
        ),
        one(
            "cloud-init",
            probe.cloud_init,
            "cloud-init is installed",
            "cloud-init is missing: a replacement would boot without lifeboat's boot guard",
            "install cloud-init (Ubuntu, Debian and Amazon Linux images have it)",
        ),
        cloud_init_enabled(probe),
        cloud_init_cache(probe),
        kubelet_after(probe),
        one(
            "imdsv2",
            probe.imdsv2,
            "IMDSv2 answers on the node",
            "IMDSv2 did not answer: the repair reads the new private IP from it",
            "aws ec2 modify-instance-metadata-options --instance-id <id> --http-endpoint enabled --http-tokens required --http-put-response-hop-limit 2",
        ),
        nvme_serials(n, probe),
    ]
}

/// cloud-init's systemd generator leaves cloud-init.target out of the boot
/// when /etc/cloud/cloud-init.disabled exists or the kernel command line has
/// `cloud-init=disabled` (cloud-init docs, "Boot stages", Generator;
/// canonical/cloud-init systemd/cloud-init-generator.tmpl and
/// tools/ds-identify, "cloud-init is disabled by kernel command line or
/// etc_file").
fn cloud_init_enabled(probe: &NodeProbe) -> Check {
    const ID: &str = "cloud-init-enabled";
    if !probe.cloud_init {
        return Check::warn(ID, "not checked: cloud-init is not installed", "see the cloud-init check");
    }
    let consequence = "a replacement would boot without running lifeboat's user data, so without its boot guard";
    if probe.cloud_init_cmdline_disabled {
        return Check::fail(
            ID,
            format!("the kernel command line (/proc/cmdline) has cloud-init=disabled: {consequence}"),
            "remove cloud-init=disabled from the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, \
             then sudo update-grub or sudo grub2-mkconfig -o /boot/grub2/grub.cfg)",
        );
    }
    if probe.cloud_init_disabled_file {
        return Check::fail(
            ID,
            format!("/etc/cloud/cloud-init.disabled exists: {consequence}"),
            "sudo rm /etc/cloud/cloud-init.disabled",
        );
    }
    Check::pass(
        ID,
        "cloud-init is enabled (no /etc/cloud/cloud-init.disabled, no cloud-init=disabled on the kernel command line)",
    )
}

/// With manual_cache_clean true (or its marker left in the instance
/// directory), cloud-init's local stage trusts its cached datasource instead
/// of checking the instance id (cloudinit/cmd/main.py main_init: `existing =
/// "trust"`; stages.py _restore_from_checked_cache; cloud-init docs, base
/// config: "By default, cloud-init searches for a datasource on every boot.
/// Setting this to true will disable this behaviour"): a replacement booting
/// from the old root would keep the old instance's id and user data.
fn cloud_init_cache(probe: &NodeProbe) -> Check {
    const ID: &str = "cloud-init-cache";
    if !probe.cloud_init {
        return Check::warn(ID, "not checked: cloud-init is not installed", "see the cloud-init check");
    }
    let consequence = "cloud-init would not see a replacement's new instance id: it would keep the old instance's \
                       user data and id, not lifeboat's boot guard";
    if let Some(file) = probe.manual_cache_clean_in() {
        return Check::fail(
            ID,
            format!("{file} sets manual_cache_clean true: {consequence}"),
            format!(
                "remove manual_cache_clean from {file} (or set it false), then sudo rm -f \
                 /var/lib/cloud/instance/manual-clean"
            ),
        );
    }
    if probe.manual_clean_marker {
        return Check::fail(
            ID,
            format!("/var/lib/cloud/instance/manual-clean exists (manual_cache_clean was set): {consequence}"),
            "sudo rm /var/lib/cloud/instance/manual-clean",
        );
    }
    Check::pass(ID, "cloud-init checks the instance id on every boot (manual_cache_clean is not set)")
}

/// The boothook makes kubelet wait for the guard from cloud-init's network
/// stage, which runs before network-online.target: only a kubelet ordered
/// after it is held on every boot.
fn kubelet_after(probe: &NodeProbe) -> Check {
    const ID: &str = "kubelet-after";
    if !probe.kubelet_unit {
        return Check::warn(ID, "not checked: there is no kubelet.service", "see the kubelet check");
    }
    let after = probe.kubelet_after.as_deref().unwrap_or_default();
    if after.split_whitespace().any(|u| u == "network-online.target") {
        return Check::pass(ID, "kubelet.service is ordered after network-online.target");
    }
    Check::fail(
        ID,
        format!(
            "kubelet.service is not ordered after network-online.target (After={after}): kubelet could start \
             before cloud-init runs lifeboat's user data, so before the boot guard holds it"
        ),
        "sudo mkdir -p /etc/systemd/system/kubelet.service.d && printf '[Unit]\\nWants=network-online.target\\n\
         After=network-online.target\\n' | sudo tee /etc/systemd/system/kubelet.service.d/10-network-online.conf \
         && sudo systemctl daemon-reload",
    )
}

/// The guard tells which volumes this boot runs on from the NVMe serials
/// (on Nitro, the EBS volume id): without them it cannot release kubelet
/// itself, and kubelet waits for lifeboat's repair over SSM.
fn nvme_serials(n: &NodeFacts, probe: &NodeProbe) -> Check {
    const ID: &str = "nvme-serials";
    let named = probe.serial_volumes();
    let consequence = "the boot guard cannot tell which volumes a replacement booted from, so it never releases \
                       kubelet itself: kubelet stays held until lifeboat's repair releases it over SSM";
    if named.is_empty() && probe.nvme_serials.is_empty() && probe.is_xen() {
        return Check::warn(
            ID,
            format!("{} is a Xen instance type without NVMe: {consequence}", n.instance.instance_type),
            "relaunch on Nitro instance types (deploy the stack with InstanceTypes listing Nitro types), or keep \
             the node reachable over SSM for the repair",
        );
    }
    if named.is_empty() {
        let seen = if probe.nvme_serials.is_empty() {
            "no /sys/class/nvme/*/serial could be read".to_string()
        } else {
            format!("no NVMe serial names an EBS volume ({})", probe.nvme_serials.join(", "))
        };
        return Check::fail(
            ID,
            format!("{seen}: {consequence}"),
            "run the node on a Nitro instance type with the kernel's nvme driver (EBS volumes are NVMe devices \
             whose serial is the volume id); check with: cat /sys/class/nvme/*/serial",
        );
    }
    let missing: Vec<&str> =
        n.instance.volumes.iter().map(|v| v.volume_id.as_str()).filter(|id| !named.iter().any(|v| v == id)).collect();
    if !missing.is_empty() {
        return Check::fail(
            ID,
            format!(
                "no NVMe serial names {} (the serials name {}): {consequence}",
                missing.join(", "),
                named.join(", ")
            ),
            "check with: cat /sys/class/nvme/*/serial (each EBS volume's serial is its id without the hyphen)",
        );
    }
    Check::pass(ID, format!("the NVMe serials name every volume: {}", named.join(", ")))
}

/// The repair's own preflight, run on the node as a relaunch would run it
/// (its dry run): the tools, etcd's data, the certificates, and what a move
/// to a new IP needs besides, which it reports in `relaunch`.
pub(super) fn repair(n: &NodeFacts) -> Check {
    const FIX: &str = "fix what the repair names (a stock kubeadm control plane has every tool it needs: see the \
                       README's \"What a node needs\"), then run preflight again";
    let d = match &n.dry_run {
        None => {
            return Check::warn(
                "repair",
                "not checked: the node is not an Online managed node (the repair's dry run runs over SSM)",
                "fix ssm-agent, then run preflight again",
            );
        }
        Some(Err(e)) => {
            return Check::fail(
                "repair",
                format!("the repair's dry run did not run: {e}"),
                "deploy the stack, allow ssm:SendCommand on its repair document (infra/iam-policy-operator.json), \
                 then run preflight again",
            );
        }
        Some(Ok(d)) => d,
    };
    if d.result != "dry-run" {
        return Check::fail("repair", format!("the repair's dry run refuses at {}: {}", d.step, d.message), FIX);
    }
    match d.relaunch.as_deref() {
        None => Check::warn(
            "repair",
            "the repair's dry run passes, but the stack's repair predates its check of a relaunch's needs",
            "update the stack with this release's packaged template",
        ),
        Some("ok") if d.warnings.is_empty() => Check::pass(
            "repair",
            "the repair's dry run passes, on this IP and for a relaunch onto a new one (kubeadm, the CAs, disk)",
        ),
        Some("ok") => Check::warn(
            "repair",
            format!("the repair's dry run passes, with warnings: {}", d.warnings.join("; ")),
            "see each warning",
        ),
        Some(problem) => {
            Check::fail("repair", format!("a relaunch onto a new IP would fail the repair's preflight: {problem}"), FIX)
        }
    }
}
