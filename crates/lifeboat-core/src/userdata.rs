//! The user data every replacement and every restore drill clone is launched
//! with: a cloud-init boothook (scripts/lifeboat-boothook.sh) that holds
//! kubelet on every boot until the repair releases it, and on drill clones a
//! fence that drops all traffic to the live node's addresses.

use std::net::Ipv4Addr;

const BOOTHOOK: &str = include_str!("../scripts/lifeboat-boothook.sh");

/// The boothook, fenced off `fence` (empty: no fence). Addresses are typed, so
/// nothing but dotted quads reaches the script.
pub fn render(fence: &[Ipv4Addr]) -> String {
    let ips: Vec<String> = fence.iter().map(Ipv4Addr::to_string).collect();
    BOOTHOOK.replace("@FENCE_IPS@", &ips.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_is_guarded_and_not_fenced() {
        let data = render(&[]);
        assert!(data.starts_with("#cloud-boothook\n#!/bin/sh\n"));
        assert!(data.contains("ConditionPathExists=/run/lifeboat/released"));
        assert!(data.contains("for ip in ; do"), "no address to fence");
        assert!(!data.contains('@'), "every placeholder is filled");
    }

    #[test]
    fn a_clone_is_fenced_off_every_live_address() {
        let data = render(&["10.0.1.4".parse().unwrap(), "203.0.113.7".parse().unwrap()]);
        assert!(data.contains("for ip in 10.0.1.4 203.0.113.7; do"));
    }
}
