//! What a relaunch needs to know about a node, and how a backup records it.
//!
//! The spec is read from the old instance when EC2 still describes it (it does
//! for a while after termination, so always during an interruption), and
//! otherwise from the tags scheduled-backup put on the image. Tags on the image
//! rather than an SSM parameter: each backup then carries the spec of the very
//! machine it was made from, and restoring from it needs no other store or
//! permission. User data is deliberately not carried: on a kubeadm node it is
//! the bootstrap (`kubeadm init/join`), which must not run again on a restored
//! control plane; the image already holds the configured system.

use crate::model::{Instance, Tags};
use crate::tags::MARKET_FALLBACK;
use crate::tags::spec::{GROUPS, HOPS, INTERFACE, IP, KEY, MARKET, PROFILE, SUBNET, TOKENS, TYPE, ZONE};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LaunchSpec {
    pub instance_type: String,
    pub subnet_id: String,
    /// The subnet's Availability Zone: a preserved volume must be in it.
    pub availability_zone: Option<String>,
    pub private_ip: Option<String>,
    pub security_group_ids: Vec<String>,
    /// The primary interface, when it is kept on termination.
    pub interface_id: Option<String>,
    pub key_name: Option<String>,
    pub instance_profile_arn: Option<String>,
    pub http_tokens: Option<String>,
    pub http_put_response_hop_limit: Option<i32>,
    /// The market the node is meant to run on: spot also while a relaunch's
    /// fallback runs it on-demand (its [`MARKET_FALLBACK`] tag), so that
    /// backups keep recording spot.
    pub spot: bool,
}

/// EC2 tag values hold at most 256 characters.
const MAX_TAG_VALUE: usize = 256;

impl LaunchSpec {
    /// The spec of a described instance; `None` without a subnet (EC2-Classic
    /// or a terminated instance EC2 no longer details).
    pub fn from_instance(instance: &Instance) -> Option<LaunchSpec> {
        Some(LaunchSpec {
            instance_type: instance.instance_type.clone(),
            subnet_id: instance.subnet_id.clone()?,
            availability_zone: instance.availability_zone.clone(),
            private_ip: instance.private_ip.clone(),
            security_group_ids: instance.security_group_ids.clone(),
            interface_id: instance
                .primary_interface
                .as_ref()
                .filter(|a| !a.delete_on_termination)
                .map(|a| a.interface_id.clone()),
            key_name: instance.key_name.clone(),
            instance_profile_arn: instance.instance_profile_arn.clone(),
            http_tokens: instance.http_tokens.clone(),
            http_put_response_hop_limit: instance.http_put_response_hop_limit,
            spot: instance.spot || instance.tags.contains_key(MARKET_FALLBACK),
        })
    }

    /// The spec as image tags. A value too long for a tag is left out (the
    /// relaunch then goes without it) rather than failing the backup.
    pub fn to_tags(&self) -> Tags {
        let mut tags: BTreeMap<&str, String> = BTreeMap::new();
        tags.insert(TYPE, self.instance_type.clone());
        tags.insert(SUBNET, self.subnet_id.clone());
        tags.insert(MARKET, if self.spot { "spot" } else { "on-demand" }.to_string());
        if !self.security_group_ids.is_empty() {
            tags.insert(GROUPS, self.security_group_ids.join(" "));
        }
        let optional = [
            (ZONE, &self.availability_zone),
            (IP, &self.private_ip),
            (INTERFACE, &self.interface_id),
            (KEY, &self.key_name),
            (PROFILE, &self.instance_profile_arn),
            (TOKENS, &self.http_tokens),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                tags.insert(key, value.clone());
            }
        }
        if let Some(hops) = self.http_put_response_hop_limit {
            tags.insert(HOPS, hops.to_string());
        }
        tags.into_iter()
            .filter(|(_, v)| !v.is_empty() && v.len() <= MAX_TAG_VALUE)
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// This spec, with every field it lacks taken from `recorded` (the
    /// image's): EC2 describes a terminated instance without its network
    /// interfaces, private IP, volumes and instance profile, so an instance
    /// seen only after its termination needs what its backup recorded. The
    /// network fields only when the subnet is the same (an address belongs
    /// to its subnet).
    pub fn completed_by(mut self, recorded: Option<LaunchSpec>) -> LaunchSpec {
        let Some(recorded) = recorded else { return self };
        let same_subnet = self.subnet_id == recorded.subnet_id;
        let fill = |mine: &mut Option<String>, theirs: Option<String>| {
            if mine.as_deref().is_none_or(str::is_empty) {
                *mine = theirs;
            }
        };
        if same_subnet {
            fill(&mut self.interface_id, recorded.interface_id);
            fill(&mut self.private_ip, recorded.private_ip);
            fill(&mut self.availability_zone, recorded.availability_zone);
        }
        if self.security_group_ids.is_empty() {
            self.security_group_ids = recorded.security_group_ids;
        }
        if self.instance_type.is_empty() {
            self.instance_type = recorded.instance_type;
        }
        fill(&mut self.key_name, recorded.key_name);
        fill(&mut self.instance_profile_arn, recorded.instance_profile_arn);
        fill(&mut self.http_tokens, recorded.http_tokens);
        self.http_put_response_hop_limit = self.http_put_response_hop_limit.or(recorded.http_put_response_hop_limit);
        self
    }

    /// Reads back what [`to_tags`](Self::to_tags) wrote; `None` if the image
    /// has no spec (made by another tool, or before lifeboat recorded it).
    pub fn from_tags(tags: &Tags) -> Option<LaunchSpec> {
        let get = |key: &str| tags.get(key).cloned();
        Some(LaunchSpec {
            instance_type: get(TYPE)?,
            subnet_id: get(SUBNET)?,
            availability_zone: get(ZONE),
            private_ip: get(IP),
            security_group_ids: get(GROUPS).map(|g| g.split(' ').map(str::to_string).collect()).unwrap_or_default(),
            interface_id: get(INTERFACE),
            key_name: get(KEY),
            instance_profile_arn: get(PROFILE),
            http_tokens: get(TOKENS),
            http_put_response_hop_limit: get(HOPS).and_then(|h| h.parse().ok()),
            spot: get(MARKET).as_deref() != Some("on-demand"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attachment;

    #[test]
    fn the_spec_survives_the_round_trip_through_image_tags() {
        let instance = Instance {
            id: "i-1".into(),
            instance_type: "m6i.large".into(),
            subnet_id: Some("subnet-1".into()),
            private_ip: Some("10.0.1.10".into()),
            security_group_ids: vec!["sg-1".into(), "sg-2".into()],
            primary_interface: Some(Attachment {
                interface_id: "eni-1".into(),
                attachment_id: "eni-attach-1".into(),
                delete_on_termination: false,
            }),
            key_name: Some("ops".into()),
            instance_profile_arn: Some("arn:aws:iam::123456789012:instance-profile/k8s".into()),
            http_tokens: Some("required".into()),
            http_put_response_hop_limit: Some(2),
            spot: true,
            ..Instance::default()
        };
        let spec = LaunchSpec::from_instance(&instance).unwrap();
        assert_eq!(spec.interface_id.as_deref(), Some("eni-1"));
        assert_eq!(LaunchSpec::from_tags(&spec.to_tags()), Some(spec));
    }

    #[test]
    fn a_node_on_demand_after_a_spot_fallback_still_records_spot() {
        let mut instance = Instance { subnet_id: Some("subnet-1".into()), spot: false, ..Instance::default() };
        let market = |i: &Instance| LaunchSpec::from_instance(i).unwrap().to_tags()[crate::tags::spec::MARKET].clone();
        assert_eq!(market(&instance), "on-demand", "launched on-demand by choice");
        instance.tags.insert(MARKET_FALLBACK.into(), "2026-11-29T02:00:00Z".into());
        assert_eq!(market(&instance), "spot");
    }

    #[test]
    fn an_interface_deleted_on_termination_is_not_part_of_the_spec() {
        let instance = Instance {
            subnet_id: Some("subnet-1".into()),
            primary_interface: Some(Attachment {
                interface_id: "eni-1".into(),
                attachment_id: "a".into(),
                delete_on_termination: true,
            }),
            ..Instance::default()
        };
        assert_eq!(LaunchSpec::from_instance(&instance).unwrap().interface_id, None);
    }

    #[test]
    fn a_terminated_instance_is_completed_by_the_recorded_spec() {
        let recorded = LaunchSpec {
            subnet_id: "subnet-1".into(),
            private_ip: Some("10.0.1.10".into()),
            interface_id: Some("eni-1".into()),
            security_group_ids: vec!["sg-1".into()],
            ..LaunchSpec::default()
        };
        let seen =
            LaunchSpec { subnet_id: "subnet-1".into(), instance_type: "m6i.large".into(), ..LaunchSpec::default() };
        let spec = seen.clone().completed_by(Some(recorded.clone()));
        assert_eq!(spec.interface_id.as_deref(), Some("eni-1"));
        assert_eq!(spec.private_ip.as_deref(), Some("10.0.1.10"));
        assert_eq!(spec.instance_type, "m6i.large");
        // Another subnet: the recorded address would not fit.
        let moved = LaunchSpec { subnet_id: "subnet-2".into(), ..seen }.completed_by(Some(recorded));
        assert_eq!((moved.interface_id, moved.private_ip), (None, None));
    }

    #[test]
    fn every_field_a_terminated_instance_no_longer_shows_comes_from_the_record() {
        let recorded = LaunchSpec {
            instance_type: "m6i.large".into(),
            subnet_id: "subnet-1".into(),
            availability_zone: Some("eu-west-1a".into()),
            key_name: Some("ops".into()),
            instance_profile_arn: Some("arn:aws:iam::123456789012:instance-profile/k8s".into()),
            http_tokens: Some("required".into()),
            http_put_response_hop_limit: Some(2),
            ..LaunchSpec::default()
        };
        // What EC2 still says of a terminated instance: type and subnet.
        let seen =
            LaunchSpec { instance_type: "m6i.large".into(), subnet_id: "subnet-1".into(), ..LaunchSpec::default() };
        let spec = seen.completed_by(Some(recorded.clone()));
        assert_eq!(spec, recorded);
    }

    #[test]
    fn images_without_a_spec_have_none() {
        assert_eq!(LaunchSpec::from_tags(&Tags::new()), None);
    }
}
