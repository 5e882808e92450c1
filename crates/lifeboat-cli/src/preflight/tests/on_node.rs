//! The instance type, and what the command on the node saw.

use super::*;
use crate::preflight::instance::root_swap_supported;

#[test]
fn bare_metal_types_cannot_take_the_old_root_back() {
    for (t, ok) in [
        ("t3.medium", true),
        ("m5.metal", false),
        ("c7i.metal-24xl", false),
        ("mac1.metal", true),
        ("mac2-m2pro.metal", true),
        ("m5.24xlarge", true),
    ] {
        assert_eq!(root_swap_supported(t), ok, "{t}");
    }
    let mut f = facts();
    assert_eq!(one(&f, "bare-metal").status, Status::Pass);
    node(&mut f).instance.instance_type = "m5.metal".into();
    let c = one(&f, "bare-metal");
    assert_eq!(c.status, Status::Warn, "a warning, not a failure");
    assert!(c.detail.contains("m5.metal in the node's own type"), "{c:?}");
    assert!(c.detail.contains("cannot come back on the old root volume"), "{c:?}");
    assert!(checks(&f).iter().all(|c| c.status != Status::Fail));

    // The stack's InstanceTypes, when set, are the relaunch's types.
    let mut s = stack();
    s.parameters.insert(stack::INSTANCE_TYPES.into(), "m5.large,m5.xlarge".into());
    f.stack = Ok(Some(s.clone()));
    assert_eq!(one(&f, "bare-metal").status, Status::Pass);
    s.parameters.insert(stack::INSTANCE_TYPES.into(), "m5.large,c5.metal".into());
    f.stack = Ok(Some(s));
    node(&mut f).instance.instance_type = "t3.medium".into();
    let c = one(&f, "bare-metal");
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.starts_with("c5.metal in the stack's InstanceTypes"), "{c:?}");
}

/// The one check of this id, with the node's probe changed.
fn probed(id: &str, change: impl FnOnce(&mut NodeProbe)) -> Check {
    let mut f = facts();
    let mut p = probe();
    change(&mut p);
    node(&mut f).probe = Some(Ok(p));
    one(&f, id)
}

#[test]
fn cloud_init_disabled_by_its_file_or_the_kernel_command_line_fails_with_the_fix() {
    let c = probed("cloud-init-enabled", |_| {});
    assert_eq!(c.status, Status::Pass, "{c:?}");

    let c = probed("cloud-init-enabled", |p| p.cloud_init_disabled_file = true);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.starts_with("/etc/cloud/cloud-init.disabled exists"), "{c:?}");
    assert!(c.detail.contains("without its boot guard"), "{c:?}");
    assert_eq!(c.fix.unwrap(), "sudo rm /etc/cloud/cloud-init.disabled");

    let c = probed("cloud-init-enabled", |p| p.cloud_init_cmdline_disabled = true);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("cloud-init=disabled"), "{c:?}");
    assert!(c.fix.unwrap().contains("GRUB_CMDLINE_LINUX"));

    // Without cloud-init the cloud-init check fails; this one only says so.
    let c = probed("cloud-init-enabled", |p| p.cloud_init = false);
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.starts_with("not checked"), "{c:?}");
}

#[test]
fn manual_cache_clean_or_its_marker_fails_naming_the_file() {
    assert_eq!(probed("cloud-init-cache", |_| {}).status, Status::Pass, "false is not set");
    assert_eq!(probed("cloud-init-cache", |p| p.manual_cache_clean = None).status, Status::Pass);

    let c =
        probed("cloud-init-cache", |p| p.manual_cache_clean = Some("/etc/cloud/cloud.cfg.d/99-keep.cfg:true".into()));
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.starts_with("/etc/cloud/cloud.cfg.d/99-keep.cfg sets manual_cache_clean true"), "{c:?}");
    assert!(c.detail.contains("new instance id"), "{c:?}");
    assert!(c.fix.unwrap().contains("remove manual_cache_clean from /etc/cloud/cloud.cfg.d/99-keep.cfg"));

    let c = probed("cloud-init-cache", |p| p.manual_clean_marker = true);
    assert_eq!(c.status, Status::Fail);
    assert_eq!(c.fix.unwrap(), "sudo rm /var/lib/cloud/instance/manual-clean");

    assert_eq!(probed("cloud-init-cache", |p| p.cloud_init = false).status, Status::Warn);
}

#[test]
fn kubelet_must_be_ordered_after_network_online() {
    assert_eq!(probed("kubelet-after", |_| {}).status, Status::Pass);
    for after in [Some("network.target system.slice"), Some("network-online.target.wants"), None] {
        let c = probed("kubelet-after", |p| p.kubelet_after = after.map(str::to_string));
        assert_eq!(c.status, Status::Fail, "{after:?}");
        assert!(c.detail.contains("before the boot guard holds it"), "{c:?}");
        assert!(c.fix.unwrap().contains("After=network-online.target"));
    }
    let c = probed("kubelet-after", |p| {
        p.kubelet_unit = false;
        p.kubelet_after = None;
    });
    assert_eq!(c.status, Status::Warn, "the kubelet check fails; this one is not checked");
}

#[test]
fn nvme_serials_must_name_every_volume_and_xen_is_a_warning() {
    let c = probed("nvme-serials", |_| {});
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.detail.contains("vol-root, vol-data"), "{c:?}");

    let c = probed("nvme-serials", |p| p.nvme_serials = vec!["nvme0:volroot".into(), "nvme1:AWS123".into()]);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.starts_with("no NVMe serial names vol-data (the serials name vol-root)"), "{c:?}");

    let c = probed("nvme-serials", |p| p.nvme_serials = vec!["nvme0:".into()]);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("no NVMe serial names an EBS volume (nvme0:)"), "{c:?}");

    let c = probed("nvme-serials", |p| p.nvme_serials = vec![]);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.starts_with("no /sys/class/nvme/*/serial could be read"), "{c:?}");
    assert!(c.detail.contains("stays held until lifeboat's repair releases it over SSM"), "{c:?}");

    let c = probed("nvme-serials", |p| {
        p.nvme_serials = vec![];
        p.hypervisor = Some("xen".into());
    });
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.detail.starts_with("t3.medium is a Xen instance type without NVMe"), "{c:?}");
    assert!(c.detail.contains("lifeboat's repair releases it over SSM"), "{c:?}");
    assert!(c.fix.unwrap().contains("Nitro"));
}

#[test]
fn the_boot_guards_checks_are_read_from_the_probes_output() {
    let out = "lifeboat-probe=1\nkubelet_unit=yes\ncrictl=yes\nkubeadm=yes\ncloud_init=yes\nimdsv2=yes\n\
               iam_role=k8s-node\ninstance_store=\ncloud_init_disabled_file=no\ncloud_init_cmdline_disabled=yes\n\
               manual_cache_clean=/etc/cloud/cloud.cfg:true\nmanual_clean_marker=yes\nkubelet_after=network.target\n\
               hypervisor=xen\nnvme_serials=\n";
    let mut f = facts();
    node(&mut f).probe = Some(Ok(probe::parse(out).unwrap()));
    let status = |id: &str| one(&f, id).status;
    assert_eq!(status("cloud-init-enabled"), Status::Fail);
    assert_eq!(status("cloud-init-cache"), Status::Fail);
    assert_eq!(status("kubelet-after"), Status::Fail);
    assert_eq!(status("nvme-serials"), Status::Warn);
    assert_eq!(status("cloud-init"), Status::Pass);
}

fn repair_with(change: impl FnOnce(&mut Option<Read<DryRun>>)) -> (Check, Vec<&'static str>) {
    let mut f = facts();
    change(&mut node(&mut f).dry_run);
    let failed = checks(&f).into_iter().filter(|c| c.status == Status::Fail).map(|c| c.id).collect();
    (one(&f, "repair"), failed)
}

#[test]
fn a_tool_the_repairs_dry_run_finds_missing_fails_the_repair_check_naming_it() {
    let (check, failed) = repair_with(|d| {
        *d = Some(Ok(DryRun {
            result: "failed".into(),
            message: "missing on the node: kubectl".into(),
            relaunch: None,
            ..dry_run_ok()
        }))
    });
    assert_eq!(failed, ["repair"]);
    assert!(check.detail.contains("refuses at preflight: missing on the node: kubectl"), "{check:?}");
}

#[test]
fn what_a_relaunch_onto_a_new_ip_lacks_fails_although_this_ip_passes() {
    let (check, failed) = repair_with(|d| {
        *d = Some(Ok(DryRun { relaunch: Some("missing on the node: kubeadm".into()), ..dry_run_ok() }))
    });
    assert_eq!(failed, ["repair"]);
    assert!(
        check
            .detail
            .contains("a relaunch onto a new IP would fail the repair's preflight: missing on the node: kubeadm")
    );
}

#[test]
fn the_repairs_warnings_an_older_repair_and_no_agent_are_warnings_a_dry_run_that_did_not_run_fails() {
    let (check, _) = repair_with(|d| {
        *d = Some(Ok(DryRun { warnings: vec!["pki/apiserver.crt expires in 12 days".into()], ..dry_run_ok() }))
    });
    assert_eq!((check.status, check.detail.contains("expires in 12 days")), (Status::Warn, true));
    let (check, _) = repair_with(|d| *d = Some(Ok(DryRun { relaunch: None, ..dry_run_ok() })));
    assert_eq!((check.status, check.fix.unwrap().contains("update the stack")), (Status::Warn, true));
    let (check, _) = repair_with(|d| *d = None);
    assert_eq!(check.status, Status::Warn);
    let (check, failed) = repair_with(|d| *d = Some(Err("AccessDeniedException: not authorized".into())));
    assert_eq!(failed, ["repair"]);
    assert!(check.fix.unwrap().contains("ssm:SendCommand"));
}
