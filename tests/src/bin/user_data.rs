//! Prints the user data interruption-handler launches with:
//!
//! ```text
//! user_data [--root-volume VOL --ip IPV4 [--data VOL=DEVICE]...] [--fence IPV4]...
//! ```
//!
//! `--root-volume` and `--ip` (with any `--data`) are the guard's self-release
//! settings; `--fence` the drill fence. The shell tests boot fixtures with
//! exactly this output.

use lifeboat_core::userdata::{SelfRelease, render};
use std::net::Ipv4Addr;

fn usage(why: &str) -> ! {
    eprintln!("user_data: {why}");
    eprintln!("usage: user_data [--root-volume VOL --ip IPV4 [--data VOL=DEVICE]...] [--fence IPV4]...");
    std::process::exit(2);
}

fn ip(value: &str) -> Ipv4Addr {
    value.parse().unwrap_or_else(|_| usage(&format!("{value:?} is not an IPv4 address")))
}

fn main() {
    let mut fence: Vec<Ipv4Addr> = Vec::new();
    let mut root: Option<String> = None;
    let mut private_ip: Option<Ipv4Addr> = None;
    let mut data: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(value) = args.next() else { usage(&format!("{arg} needs a value")) };
        match arg.as_str() {
            "--fence" => fence.push(ip(&value)),
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
    print!("{}", render(release.as_ref(), &fence));
}
