//! Prints the user data interruption-handler launches with:
//!
//! ```text
//! user_data [--root-volume VOL --ip IPV4 [--data VOL=DEVICE]...]
//!           [--fence IP... --vpc CIDR... [--region REGION]]
//! ```
//!
//! `--root-volume` and `--ip` (with any `--data`) are the guard's self-release
//! settings; `--fence` (the live node's addresses), `--vpc` (the VPC's blocks,
//! the primary IPv4 one first) and `--region` the drill fence. The shell
//! tests boot fixtures with exactly this output.

use lifeboat_core::userdata::{Fence, SelfRelease, render};
use std::net::{IpAddr, Ipv4Addr};

fn usage(why: &str) -> ! {
    eprintln!("user_data: {why}");
    eprintln!(
        "usage: user_data [--root-volume VOL --ip IPV4 [--data VOL=DEVICE]...] [--fence IP... --vpc CIDR... [--region REGION]]"
    );
    std::process::exit(2);
}

fn ip(value: &str) -> Ipv4Addr {
    value.parse().unwrap_or_else(|_| usage(&format!("{value:?} is not an IPv4 address")))
}

fn main() {
    let mut fence: Vec<IpAddr> = Vec::new();
    let mut vpc: Vec<String> = Vec::new();
    let mut region: Option<String> = None;
    let mut root: Option<String> = None;
    let mut private_ip: Option<Ipv4Addr> = None;
    let mut data: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(value) = args.next() else { usage(&format!("{arg} needs a value")) };
        match arg.as_str() {
            "--fence" => fence.push(value.parse().unwrap_or_else(|_| usage(&format!("{value:?} is not an address")))),
            "--vpc" => vpc.push(value),
            "--region" => region = Some(value),
            "--ip" => private_ip = Some(ip(&value)),
            "--root-volume" => root = Some(value),
            "--data" => match value.split_once('=') {
                Some((volume, device)) => data.push((volume.to_string(), device.to_string())),
                None => usage(&format!("--data {value:?} is not VOL=DEVICE")),
            },
            _ => usage(&format!("unknown argument {arg:?}")),
        }
    }
    let release = match (root, private_ip) {
        (Some(root), Some(ip)) => Some(SelfRelease::new(&root, &data, ip).unwrap_or_else(|e| usage(&e.to_string()))),
        (None, None) if data.is_empty() => None,
        _ => usage("--root-volume and --ip go together, and --data needs them"),
    };
    let fence = match (fence.is_empty(), vpc.is_empty() && region.is_none()) {
        (true, true) => None,
        (true, false) => usage("--vpc and --region need --fence"),
        (false, _) => Some(Fence::new(&fence, &vpc, region.as_deref()).unwrap_or_else(|e| usage(&e.to_string()))),
    };
    print!("{}", render(release.as_ref(), fence.as_ref()));
}
