//! The user data every replacement and every restore drill clone is launched
//! with: a cloud-init boothook (scripts/lifeboat-boothook.sh) that, on every
//! boot, holds kubelet behind lifeboat's boot guard (scripts/lifeboat-guard.sh,
//! written to /run/lifeboat/guard). The guard releases kubelet by itself when
//! the machine boots from the state lifeboat chose ([`SelfRelease`]) or when
//! this instance was released before; otherwise lifeboat's repair releases
//! it. On drill clones a default-deny fence ([`Fence`]) drops all traffic
//! but what the clone needs, the live node's addresses first, and the guard
//! never releases itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

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

/// What a drill clone's fence lets through and what it drops: the live
/// node's addresses first, then every address of the VPC but the Amazon
/// resolver (the primary IPv4 block's base plus two) and the addresses the
/// SSM endpoints' names resolve to (in-VPC interface endpoints), HTTPS
/// outside the VPC, nothing else. Built only by [`Fence::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    live: Vec<IpAddr>,
    vpc: Vec<String>,
    resolver: Ipv4Addr,
    ssm_hosts: Vec<String>,
}

/// A CIDR block as `a.b.c.d/n` or `x:y::/n`, masked to its prefix.
fn cidr(block: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = block.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let masked = match addr {
        IpAddr::V4(a) if len <= 32 => {
            IpAddr::V4((u32::from(a) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)).into())
        }
        IpAddr::V6(a) if len <= 128 => {
            IpAddr::V6((u128::from(a) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)).into())
        }
        _ => return None,
    };
    Some((masked, len))
}

impl Fence {
    /// `live`: the live node's addresses (never empty); `vpc`: the VPC's
    /// CIDR blocks, its primary IPv4 block first; `region`: where the SSM
    /// endpoints are (`ssm`, `ssmmessages`, `ec2messages`).
    pub fn new(live: &[IpAddr], vpc: &[String], region: Option<&str>) -> Result<Self, InvalidSelfRelease> {
        let invalid = |what: String| Err(InvalidSelfRelease(what));
        if live.is_empty() {
            return invalid("no address of the live node: a clone cannot be fenced off it".into());
        }
        let mut blocks = Vec::new();
        for block in vpc {
            match cidr(block) {
                Some((addr, len)) => blocks.push((addr, len)),
                None => return invalid(format!("VPC block {block:?} is not a CIDR block")),
            }
        }
        let Some(IpAddr::V4(base)) = blocks.first().map(|b| b.0) else {
            return invalid(format!("the VPC's blocks {vpc:?} do not start with its primary IPv4 block"));
        };
        let resolver = Ipv4Addr::from(u32::from(base) + 2);
        let mut ssm_hosts = Vec::new();
        if let Some(region) = region {
            if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return invalid(format!("region {region:?} is not a region name"));
            }
            ssm_hosts = ["ssm", "ssmmessages", "ec2messages"].map(|s| format!("{s}.{region}.amazonaws.com")).to_vec();
        }
        let vpc = blocks.iter().map(|(a, l)| format!("{a}/{l}")).collect();
        Ok(Self { live: live.to_vec(), vpc, resolver, ssm_hosts })
    }

    pub fn resolver(&self) -> Ipv4Addr {
        self.resolver
    }
}

/// The boothook with its settings: `release` lets the guard release kubelet
/// by itself (None: only this instance's earlier release or lifeboat's repair
/// does); `fence` fences a drill clone (None: no fence). A fenced clone never
/// releases itself: with a fence, `release` is left out.
pub fn render(release: Option<&SelfRelease>, fence: Option<&Fence>) -> String {
    let release = if fence.is_some() { None } else { release };
    let join = |items: Vec<String>| items.join(" ");
    let (live, vpc, resolver, ssm) = match fence {
        Some(f) => (
            join(f.live.iter().map(IpAddr::to_string).collect()),
            f.vpc.join(" "),
            f.resolver.to_string(),
            f.ssm_hosts.join(" "),
        ),
        None => Default::default(),
    };
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
        .replace("@FENCE_IPS@", &live)
        .replace("@VPC_CIDRS@", &vpc)
        .replace("@RESOLVER@", &resolver)
        .replace("@SSM_HOSTS@", &ssm)
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
        [
            "@ROOT_VOLUME@",
            "@DATA_VOLUMES@",
            "@PRIVATE_IP@",
            "@FENCE_IPS@",
            "@VPC_CIDRS@",
            "@RESOLVER@",
            "@SSM_HOSTS@",
            "@GUARD_SCRIPT@",
        ]
        .into_iter()
        .filter(|p| data.contains(p))
        .collect()
    }

    #[test]
    fn a_replacement_is_guarded_and_not_fenced() {
        let data = render(None, None);
        assert!(data.starts_with("#cloud-boothook\n#!/bin/sh\n"));
        assert!(data.contains("ConditionPathExists=/run/lifeboat/released"));
        assert!(data.contains("Before=kubelet.service"));
        assert!(data.contains("FENCE=''") && data.contains("VPC=''"), "no fence");
        assert!(data.contains("ROOT_VOLUME=''"), "no self-release");
        assert!(placeholders(&data).is_empty(), "every placeholder is filled");
    }

    #[test]
    fn the_guard_script_is_written_whole() {
        let data = render(None, None);
        assert!(data.contains(GUARD.trim_end()));
        assert!(!GUARD.lines().any(|l| l == GUARD_END), "the guard never ends the boothook's heredoc");
        assert!(data.contains(&format!("<<'{GUARD_END}'\n{}\n{GUARD_END}\n", GUARD.trim_end())));
        assert_eq!(data.lines().filter(|l| *l == GUARD_END).count(), 1, "closed once");
    }

    #[test]
    fn a_replacement_carries_what_its_self_release_checks() {
        let r = release(&[("vol-0d0d0d0d0d0d00003", "/dev/sdf"), ("vol-0e0e", "/dev/xvdg")]).unwrap();
        let data = render(Some(&r), None);
        assert!(data.contains("ROOT_VOLUME='vol-0a1b2c3d4e5f60001'"));
        assert!(data.contains("DATA_VOLUMES='vol-0d0d0d0d0d0d00003=/dev/sdf vol-0e0e=/dev/xvdg'"));
        assert!(data.contains("PRIVATE_IP='10.0.1.4'"));
        assert!(placeholders(&data).is_empty());
    }

    fn fence(live: &[&str], vpc: &[&str], region: Option<&str>) -> Result<Fence, InvalidSelfRelease> {
        let live: Vec<IpAddr> = live.iter().map(|a| a.parse().unwrap()).collect();
        Fence::new(&live, &vpc.iter().map(|b| b.to_string()).collect::<Vec<_>>(), region)
    }

    #[test]
    fn a_clone_is_fenced_off_every_live_address_and_never_releases_itself() {
        let r = release(&[]).unwrap();
        let f = fence(
            &["10.0.1.4", "203.0.113.7", "2600:1f18::4"],
            &["10.0.0.0/16", "100.64.0.0/20", "2600:1f18::/56"],
            Some("eu-west-1"),
        )
        .unwrap();
        let data = render(Some(&r), Some(&f));
        assert!(data.contains("FENCE='10.0.1.4 203.0.113.7 2600:1f18::4'"));
        assert!(data.contains("VPC='10.0.0.0/16 100.64.0.0/20 2600:1f18::/56'"));
        assert!(data.contains("RESOLVER='10.0.0.2'"));
        assert!(data.contains("SSM_HOSTS='ssm.eu-west-1.amazonaws.com ssmmessages.eu-west-1.amazonaws.com ec2messages.eu-west-1.amazonaws.com'"));
        assert!(data.contains("ROOT_VOLUME=''") && data.contains("PRIVATE_IP=''"));
        assert!(placeholders(&data).is_empty());
    }

    #[test]
    fn the_fence_takes_blocks_masked_the_resolver_from_the_primary_block_and_refuses_what_is_not_a_network() {
        let f = fence(&["10.1.2.3"], &["10.1.7.9/16", "2600:1f18:1:2ff::/56"], None).unwrap();
        assert_eq!(f.vpc, ["10.1.0.0/16", "2600:1f18:1:200::/56"]);
        assert_eq!(f.resolver(), "10.1.0.2".parse::<Ipv4Addr>().unwrap());
        assert!(f.ssm_hosts.is_empty(), "no region: only HTTPS outside the VPC reaches SSM");
        assert!(fence(&[], &["10.0.0.0/16"], None).is_err(), "no live address");
        assert!(fence(&["10.0.1.4"], &[], None).is_err(), "no VPC block");
        assert!(
            fence(&["10.0.1.4"], &["2600:1f18::/56", "10.0.0.0/16"], None).is_err(),
            "the primary IPv4 block first"
        );
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/16", "10.0.0.0/16; reboot", "2600::/129"] {
            assert!(fence(&["10.0.1.4"], &["10.0.0.0/16", bad], None).is_err(), "{bad}");
        }
        for bad in ["EU-WEST-1", "eu-west-1'", ""] {
            assert!(fence(&["10.0.1.4"], &["10.0.0.0/16"], Some(bad)).is_err(), "{bad}");
        }
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
        let f = fence(
            &["10.0.1.4", "203.0.113.7", "198.51.100.1", "2600:1f18:1:2ff:1234:5678:9abc:def0"],
            &["10.0.0.0/16", "100.64.0.0/16", "172.16.0.0/16", "2600:1f18:1:200::/56"],
            Some("ap-southeast-2"),
        )
        .unwrap();
        for rendered in [render(None, None), render(Some(&r), None), render(None, Some(&f))] {
            assert!(rendered.len() < USER_DATA_LIMIT, "{} bytes", rendered.len());
        }
    }
}
