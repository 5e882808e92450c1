//! The user data every replacement and every restore drill clone is launched
//! with: a cloud-init boothook (scripts/lifeboat-boothook.sh) that, on every
//! boot, holds kubelet behind lifeboat's boot guard (scripts/lifeboat-guard.sh,
//! written to /run/lifeboat/guard). The guard releases kubelet by itself when
//! the machine boots from the state lifeboat chose ([`SelfRelease`]) or when
//! this instance was released before; otherwise lifeboat's repair releases
//! it. On drill clones a fence drops all traffic to the live node's
//! addresses, and the guard never releases itself.

use std::fmt;
use std::net::Ipv4Addr;

const BOOTHOOK: &str = include_str!("../scripts/lifeboat-boothook.sh");
const GUARD: &str = include_str!("../scripts/lifeboat-guard.sh");

/// EC2's limit on user data, in raw form before base64 encoding.
pub const USER_DATA_LIMIT: usize = 16 * 1024;

/// What the guard checks before it releases kubelet by itself: the root
/// volume the replacement must boot from (the preserved root the swap puts
/// in), the data volumes that must be attached (volume id, device), and the
/// private IP the node must run on and be configured for. Built only by
/// [`SelfRelease::new`], which checks each value's shape, so nothing but
/// volume ids, device names and a dotted quad reaches the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfRelease {
    root_volume: String,
    data: Vec<(String, String)>,
    private_ip: Ipv4Addr,
}

/// A value [`SelfRelease::new`] refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSelfRelease(pub String);

impl fmt::Display for InvalidSelfRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidSelfRelease {}

/// An EBS volume id: `vol-` and 1 to 17 lowercase hex digits (an NVMe serial
/// holds 20 characters: `vol` and the digits).
fn is_volume_id(id: &str) -> bool {
    id.strip_prefix("vol-").is_some_and(|hex| {
        (1..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A device name as EC2 takes it for AttachVolume: `/dev/` and a short
/// lowercase name (`/dev/sdf`, `/dev/xvdf`).
fn is_device(name: &str) -> bool {
    name.strip_prefix("/dev/").is_some_and(|dev| {
        let mut bytes = dev.bytes();
        (1..=31).contains(&dev.len())
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

impl SelfRelease {
    /// Checks the shape of every value: volume ids `vol-<hex>`, devices
    /// `/dev/<name>`, each volume and each device named once.
    pub fn new(root_volume: &str, data: &[(String, String)], private_ip: Ipv4Addr) -> Result<Self, InvalidSelfRelease> {
        let invalid = |what: String| Err(InvalidSelfRelease(what));
        if !is_volume_id(root_volume) {
            return invalid(format!("root volume {root_volume:?} is not a volume id (vol-<hex>)"));
        }
        let mut volumes = vec![root_volume];
        let mut devices: Vec<&str> = Vec::new();
        for (volume, device) in data {
            if !is_volume_id(volume) {
                return invalid(format!("data volume {volume:?} is not a volume id (vol-<hex>)"));
            }
            if !is_device(device) {
                return invalid(format!("device {device:?} of {volume} is not a device name (/dev/<name>)"));
            }
            if volumes.contains(&volume.as_str()) {
                return invalid(format!("volume {volume} is named twice"));
            }
            if devices.contains(&device.as_str()) {
                return invalid(format!("device {device} is named twice"));
            }
            volumes.push(volume);
            devices.push(device);
        }
        Ok(Self { root_volume: root_volume.to_string(), data: data.to_vec(), private_ip })
    }

    pub fn root_volume(&self) -> &str {
        &self.root_volume
    }

    pub fn data(&self) -> &[(String, String)] {
        &self.data
    }

    pub fn private_ip(&self) -> Ipv4Addr {
        self.private_ip
    }
}

/// The boothook with its settings: `release` lets the guard release kubelet
/// by itself (None: only this instance's earlier release or lifeboat's repair
/// does); `fence` fences a drill clone off those addresses (empty: no fence).
/// A fenced clone never releases itself: with a fence, `release` is left out.
pub fn render(release: Option<&SelfRelease>, fence: &[Ipv4Addr]) -> String {
    let release = if fence.is_empty() { release } else { None };
    let ips: Vec<String> = fence.iter().map(Ipv4Addr::to_string).collect();
    let (root, data, ip) = match release {
        Some(r) => (
            r.root_volume.clone(),
            r.data.iter().map(|(volume, device)| format!("{volume}={device}")).collect::<Vec<_>>().join(" "),
            r.private_ip.to_string(),
        ),
        None => Default::default(),
    };
    // The settings first: the guard's own text is never substituted.
    BOOTHOOK
        .replace("@ROOT_VOLUME@", &root)
        .replace("@DATA_VOLUMES@", &data)
        .replace("@PRIVATE_IP@", &ip)
        .replace("@FENCE_IPS@", &ips.join(" "))
        .replace("@GUARD_SCRIPT@", GUARD.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heredoc delimiter the boothook writes the guard script with.
    const GUARD_END: &str = "LIFEBOAT_GUARD_END";

    fn release(data: &[(&str, &str)]) -> Result<SelfRelease, InvalidSelfRelease> {
        let data: Vec<(String, String)> = data.iter().map(|(v, d)| (v.to_string(), d.to_string())).collect();
        SelfRelease::new("vol-0a1b2c3d4e5f60001", &data, "10.0.1.4".parse().unwrap())
    }

    fn placeholders(data: &str) -> Vec<&str> {
        ["@ROOT_VOLUME@", "@DATA_VOLUMES@", "@PRIVATE_IP@", "@FENCE_IPS@", "@GUARD_SCRIPT@"]
            .into_iter()
            .filter(|p| data.contains(p))
            .collect()
    }

    #[test]
    fn a_replacement_is_guarded_and_not_fenced() {
        let data = render(None, &[]);
        assert!(data.starts_with("#cloud-boothook\n#!/bin/sh\n"));
        assert!(data.contains("ConditionPathExists=/run/lifeboat/released"));
        assert!(data.contains("Before=kubelet.service"));
        assert!(data.contains("FENCE=''") && data.contains("for ip in ; do"), "no address to fence");
        assert!(data.contains("ROOT_VOLUME=''"), "no self-release");
        assert!(placeholders(&data).is_empty(), "every placeholder is filled");
    }

    #[test]
    fn the_guard_script_is_written_whole() {
        let data = render(None, &[]);
        assert!(data.contains(GUARD.trim_end()));
        assert!(!GUARD.lines().any(|l| l == GUARD_END), "the guard never ends the boothook's heredoc");
        assert!(data.contains(&format!("<<'{GUARD_END}'\n{}\n{GUARD_END}\n", GUARD.trim_end())));
        assert_eq!(data.lines().filter(|l| *l == GUARD_END).count(), 1, "closed once");
    }

    #[test]
    fn a_replacement_carries_what_its_self_release_checks() {
        let r = release(&[("vol-0d0d0d0d0d0d00003", "/dev/sdf"), ("vol-0e0e", "/dev/xvdg")]).unwrap();
        let data = render(Some(&r), &[]);
        assert!(data.contains("ROOT_VOLUME='vol-0a1b2c3d4e5f60001'"));
        assert!(data.contains("DATA_VOLUMES='vol-0d0d0d0d0d0d00003=/dev/sdf vol-0e0e=/dev/xvdg'"));
        assert!(data.contains("PRIVATE_IP='10.0.1.4'"));
        assert!(placeholders(&data).is_empty());
    }

    #[test]
    fn a_clone_is_fenced_off_every_live_address_and_never_releases_itself() {
        let r = release(&[]).unwrap();
        let data = render(Some(&r), &["10.0.1.4".parse().unwrap(), "203.0.113.7".parse().unwrap()]);
        assert!(data.contains("FENCE='10.0.1.4 203.0.113.7'"));
        assert!(data.contains("for ip in 10.0.1.4 203.0.113.7; do"));
        assert!(data.contains("ROOT_VOLUME=''") && data.contains("PRIVATE_IP=''"));
    }

    #[test]
    fn only_volume_ids_and_device_names_reach_the_script() {
        for bad in ["vol-", "vol-0A1B", "vol-0a1b2c3d4e5f600012", "vol-0a1b'", "snap-0a1b", "vol-0a1b; reboot"] {
            let data = vec![(bad.to_string(), "/dev/sdf".to_string())];
            assert!(SelfRelease::new("vol-0a1b", &data, Ipv4Addr::LOCALHOST).is_err(), "{bad}");
            assert!(SelfRelease::new(bad, &[], Ipv4Addr::LOCALHOST).is_err(), "{bad}");
        }
        for bad in ["sdf", "/dev/", "/dev/sd f", "/dev/../sdf", "/dev/sdf'", "/dev/Sdf", "/dev/1sdf"] {
            assert!(release(&[("vol-0d0d", bad)]).is_err(), "{bad}");
        }
        assert!(release(&[("vol-0d0d", "/dev/sdf"), ("vol-0d0d", "/dev/sdg")]).is_err(), "a volume twice");
        assert!(release(&[("vol-0d0d", "/dev/sdf"), ("vol-0e0e", "/dev/sdf")]).is_err(), "a device twice");
        assert!(release(&[("vol-0a1b2c3d4e5f60001", "/dev/sdf")]).is_err(), "the root as data");
        assert!(release(&[("vol-0d0d", "/dev/sdf"), ("vol-0e0e", "/dev/xvdba"), ("vol-0f0f", "/dev/nvme3n1")]).is_ok());
    }

    #[test]
    fn the_user_data_fits_ec2s_limit() {
        // Every device EC2 offers for EBS data volumes on a Nitro type, each
        // with a 17-digit id; a fence of four addresses.
        let data: Vec<(String, String)> =
            (0..26).map(|i| (format!("vol-0{:016x}", i + 1), format!("/dev/sd{}", (b'a' + i as u8) as char))).collect();
        let r = SelfRelease::new("vol-0a1b2c3d4e5f60001", &data, "10.0.1.4".parse().unwrap()).unwrap();
        let fence: Vec<Ipv4Addr> =
            ["10.0.1.4", "203.0.113.7", "198.51.100.1", "192.0.2.9"].map(|a| a.parse().unwrap()).to_vec();
        for rendered in [render(None, &[]), render(Some(&r), &[]), render(None, &fence)] {
            assert!(rendered.len() < USER_DATA_LIMIT, "{} bytes", rendered.len());
        }
    }
}
