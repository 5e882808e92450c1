//! Every tag write each function makes, declared: the call that carries the
//! tags (CreateTags on a resource that exists, or the tags a creating call
//! gives its new resources), the resource type, the keys, and on CreateTags
//! the tag the resource already carries. IAM decides on exactly these (EC2
//! authorizes tags at creation as `ec2:CreateTags` with `ec2:CreateAction`),
//! so infra/check_stack.py checks each function's policy against this table
//! (`cargo run -p lifeboat-core --example contract` prints it), and the
//! in-memory cloud refuses any tag write the table does not declare: the
//! flow tests prove it covers every path they take.
//!
//! The node tag's key is the deployed one, [`DEFAULT_NODE_TAG`] (the stack
//! fixes it).

use super::{
    AUTO_BACKUP, DEVICE, DRILL, DRILL_KEPT, DRILL_OF, INSTANCE, KIND, MARKET_FALLBACK, MARKET_FALLBACK_REASON, NAME,
    REPLACES, RESTORED_FROM, ROOT_IMAGE, ROOT_LOST, ROOT_VOLUME, SOURCE_INSTANCE, STATE_AS_OF, STATE_SOURCE,
    VOLUME_ROLE, spec,
};
use crate::config::DEFAULT_NODE_TAG;
use crate::model::Tags;
use Key::{Always, Sometimes, User};
use serde::Serialize;

const NODE: &str = DEFAULT_NODE_TAG;

/// The EC2 call that writes the tags. (No call of lifeboat's tags a root
/// volume replacement task today; a new interface gets the launch's
/// volume tags.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Operation {
    /// Tags added to a resource that exists.
    CreateTags,
    /// Tags given at creation (TagSpecifications) by these calls.
    RunInstances,
    CreateImage,
    CreateVolume,
    CreateReplaceRootVolumeTask,
    CreateNetworkInterface,
}

/// The EC2 resource type tagged, as the Service Authorization Reference
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    Instance,
    Volume,
    Image,
    Snapshot,
    NetworkInterface,
    ReplaceRootVolumeTask,
}

/// One key of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Written every time.
    Always(&'static str),
    /// Written when its value is known (a time, a launch spec field).
    Sometimes(&'static str),
    /// Any of the user's own keys, copied from the node's instance: not
    /// lifeboat's (never a `lifeboat:` key), and possibly none.
    User,
}

/// One tag write of the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagWrite {
    /// What is tagged and why, and where the code does it.
    pub what: &'static str,
    pub operation: Operation,
    pub resource: Resource,
    pub keys: &'static [Key],
    /// CreateTags: the tag key the resource carries before the write
    /// (`None`: nothing lifeboat can count on).
    pub resource_tag: Option<&'static str>,
}

/// Whether a key is lifeboat's own (a user's key copied along never is).
pub fn is_lifeboat_key(key: &str) -> bool {
    key.starts_with("lifeboat:")
}

impl TagWrite {
    /// Whether these keys are a write this declaration describes: every
    /// `Always` key, and nothing but its keys (or a user's, if it copies them).
    pub fn admits<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> bool {
        let keys: Vec<&str> = keys.into_iter().collect();
        let user = self.keys.contains(&Key::User);
        let declared = |k: &str| self.keys.iter().any(|d| matches!(d, Key::Always(x) | Key::Sometimes(x) if *x == k));
        let mut always = self.keys.iter().filter_map(|k| if let Key::Always(x) = k { Some(*x) } else { None });
        always.all(|k| keys.contains(&k)) && keys.iter().all(|k| declared(k) || (user && !is_lifeboat_key(k)))
    }

    /// The write as [`crate::contract::manifest`] lists it.
    pub fn manifest(&self) -> serde_json::Value {
        let names = |always: bool| -> Vec<&str> {
            self.keys
                .iter()
                .filter_map(|k| match k {
                    Key::Always(x) if always => Some(*x),
                    Key::Sometimes(x) if !always => Some(*x),
                    _ => None,
                })
                .collect()
        };
        serde_json::json!({
            "what": self.what,
            "operation": self.operation,
            "resource_type": self.resource,
            "keys": names(true),
            "optional_keys": names(false),
            "user_keys": self.keys.contains(&Key::User),
            "resource_tag": self.resource_tag,
        })
    }
}

/// The keys of [`super::backup`], on an image and on its snapshots.
const BACKUP_KEYS: [Key; 5] = [Always(NAME), Always(NODE), Always(SOURCE_INSTANCE), Always(KIND), Always(AUTO_BACKUP)];

/// The launch spec of [`crate::spec::LaunchSpec::to_tags`]: on the image
/// only, each field when the instance has it.
const SPEC_KEYS: [Key; 11] = [
    Sometimes(spec::TYPE),
    Sometimes(spec::ZONE),
    Sometimes(spec::SUBNET),
    Sometimes(spec::IP),
    Sometimes(spec::GROUPS),
    Sometimes(spec::INTERFACE),
    Sometimes(spec::KEY),
    Sometimes(spec::PROFILE),
    Sometimes(spec::TOKENS),
    Sometimes(spec::HOPS),
    Sometimes(spec::MARKET),
];

/// `a`, then `b`: one table built from two, as constants.
const fn concat<const A: usize, const B: usize, const C: usize>(a: [Key; A], b: [Key; B]) -> [Key; C] {
    assert!(A + B == C);
    let mut out = [User; C];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < C {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

const IMAGE_KEYS: [Key; 16] = concat(BACKUP_KEYS, SPEC_KEYS);

/// A backup (scheduled-backup; the handler's final and early images):
/// backup.rs `scheduled_image`, relaunch/mod.rs `backup`.
pub const BACKUP: &[TagWrite] = &[
    TagWrite {
        what: "a backup image with its launch spec (backup.rs, relaunch/mod.rs)",
        operation: Operation::CreateImage,
        resource: Resource::Image,
        keys: &IMAGE_KEYS,
        resource_tag: None,
    },
    TagWrite {
        what: "a backup image's snapshots (backup.rs, relaunch/mod.rs)",
        operation: Operation::CreateImage,
        resource: Resource::Snapshot,
        keys: &BACKUP_KEYS,
        resource_tag: None,
    },
];

/// Preparing a node (every backup, and the replacement after a relaunch):
/// prepare.rs. Neither the interface nor a fresh node's volumes carry a
/// tag yet.
pub const PREPARE: &[TagWrite] = &[
    TagWrite {
        what: "the node's primary interface, before it is kept (prepare.rs keep_interface)",
        operation: Operation::CreateTags,
        resource: Resource::NetworkInterface,
        keys: &[Always(NODE)],
        resource_tag: None,
    },
    TagWrite {
        what: "the node's volumes: node, instance, device, role (prepare.rs keep_volumes)",
        operation: Operation::CreateTags,
        resource: Resource::Volume,
        keys: &[Always(NODE), Always(INSTANCE), Always(DEVICE), Always(VOLUME_ROLE)],
        resource_tag: None,
    },
];

/// A relaunch: relaunch/launch.rs `replacement_tags` and the launch's
/// volume tags, relaunch/disks.rs `swap_final_root` and
/// `fall_back_to_image`.
pub const RELAUNCH: &[TagWrite] = &[
    TagWrite {
        what: "the replacement: the old instance's own tags and lifeboat's generation markers, and its fallback \
               to on-demand (relaunch/launch.rs)",
        operation: Operation::RunInstances,
        resource: Resource::Instance,
        keys: &[
            User,
            Always(NODE),
            Always(NAME),
            Always(REPLACES),
            Always(RESTORED_FROM),
            Always(STATE_SOURCE),
            Sometimes(STATE_AS_OF),
            Sometimes(ROOT_VOLUME),
            Sometimes(MARKET_FALLBACK),
            Sometimes(MARKET_FALLBACK_REASON),
        ],
        resource_tag: None,
    },
    TagWrite {
        what: "the replacement's new volumes (relaunch/launch.rs)",
        operation: Operation::RunInstances,
        resource: Resource::Volume,
        keys: &[Always(NODE)],
        resource_tag: None,
    },
    TagWrite {
        what: "the replacement's new interface, when the kept one is gone (relaunch/launch.rs, the adapter)",
        operation: Operation::RunInstances,
        resource: Resource::NetworkInterface,
        keys: &[Always(NODE)],
        resource_tag: None,
    },
    TagWrite {
        what: "the replacement takes the final image's root (relaunch/disks.rs swap_final_root)",
        operation: Operation::CreateTags,
        resource: Resource::Instance,
        keys: &[Always(STATE_SOURCE), Always(ROOT_IMAGE), Sometimes(STATE_AS_OF)],
        resource_tag: Some(NODE),
    },
    TagWrite {
        what: "a replacement a root swap left without a root, before it is terminated (relaunch/disks.rs rootless)",
        operation: Operation::CreateTags,
        resource: Resource::Instance,
        keys: &[Always(ROOT_LOST)],
        resource_tag: Some(NODE),
    },
    TagWrite {
        what: "the replacement keeps the root of the image it booted (relaunch/disks.rs fall_back_to_image)",
        operation: Operation::CreateTags,
        resource: Resource::Instance,
        keys: &[Always(STATE_SOURCE), Sometimes(STATE_AS_OF)],
        resource_tag: Some(NODE),
    },
];

/// A restore drill: relaunch/drill.rs.
pub const DRILL_WRITES: &[TagWrite] = &[
    TagWrite {
        what: "a drill's clone (relaunch/drill.rs clone_tags)",
        operation: Operation::RunInstances,
        resource: Resource::Instance,
        keys: &[Always(DRILL_OF), Always(NAME), Always(RESTORED_FROM)],
        resource_tag: None,
    },
    TagWrite {
        what: "a drill clone's volumes (relaunch/drill.rs clone_tags)",
        operation: Operation::RunInstances,
        resource: Resource::Volume,
        keys: &[Always(DRILL_OF)],
        resource_tag: None,
    },
    TagWrite {
        what: "a drill clone's new interface (relaunch/drill.rs clone_tags, the adapter)",
        operation: Operation::RunInstances,
        resource: Resource::NetworkInterface,
        keys: &[Always(DRILL_OF)],
        resource_tag: None,
    },
    TagWrite {
        what: "the volume a drill makes from the backup's root snapshot (relaunch/drill.rs)",
        operation: Operation::CreateVolume,
        resource: Resource::Volume,
        keys: &[Always(DRILL_OF), Always(INSTANCE)],
        resource_tag: None,
    },
    TagWrite {
        what: "a clone left running on request (relaunch/drill.rs, keep)",
        operation: Operation::CreateTags,
        resource: Resource::Instance,
        keys: &[Always(DRILL_KEPT)],
        resource_tag: Some(DRILL_OF),
    },
    TagWrite {
        what: "the drill's result on the backup image (relaunch/drill.rs record_on_image)",
        operation: Operation::CreateTags,
        resource: Resource::Image,
        keys: &[Always(DRILL)],
        resource_tag: Some(NODE),
    },
];

/// The functions and the tag writes of each.
pub fn by_function() -> [(&'static str, Vec<TagWrite>); 3] {
    let of = |parts: &[&[TagWrite]]| parts.concat();
    [
        ("scheduled-backup", of(&[BACKUP, PREPARE])),
        ("retention-pruner", Vec::new()),
        ("interruption-handler", of(&[BACKUP, PREPARE, RELAUNCH, DRILL_WRITES])),
    ]
}

/// Every declared write, of any function.
pub fn all() -> impl Iterator<Item = &'static TagWrite> {
    [BACKUP, PREPARE, RELAUNCH, DRILL_WRITES].into_iter().flatten()
}

/// The declaration that describes this write, if any: `operation` puts
/// `tags` on a `resource` that (for CreateTags) carries `carried`.
pub fn declaration(operation: Operation, resource: Resource, tags: &Tags, carried: &Tags) -> Option<&'static TagWrite> {
    all().find(|w| {
        w.operation == operation
            && w.resource == resource
            && w.resource_tag.is_none_or(|t| carried.contains_key(t))
            && w.admits(tags.keys().map(String::as_str))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::LaunchSpec;

    fn keys(tags: &Tags) -> impl Iterator<Item = &str> {
        tags.keys().map(String::as_str)
    }

    #[test]
    fn the_tags_lifeboat_builds_are_declared() {
        let backup = super::super::backup(NODE, "k8s-master", "i-1", "k8s-master-20260101-0100", "scheduled");
        let mut image = backup.clone();
        let spec = LaunchSpec {
            instance_type: "t3.medium".into(),
            subnet_id: "subnet-a".into(),
            availability_zone: Some("eu-west-1a".into()),
            private_ip: Some("10.0.1.4".into()),
            security_group_ids: vec!["sg-1".into()],
            interface_id: Some("eni-1".into()),
            key_name: Some("ops".into()),
            instance_profile_arn: Some("arn:aws:iam::123456789012:instance-profile/k8s".into()),
            http_tokens: Some("required".into()),
            http_put_response_hop_limit: Some(2),
            spot: true,
        };
        image.extend(spec.to_tags());
        assert!(BACKUP[0].admits(keys(&image)), "{image:?}");
        assert!(BACKUP[0].admits(keys(&backup)), "an image without a spec");
        assert!(BACKUP[1].admits(keys(&backup)));
        assert!(!BACKUP[1].admits(keys(&image)), "the spec is on the image only");
        let volume = super::super::volume(NODE, "k8s-master", "i-1", "/dev/xvda", true);
        assert!(PREPARE[1].admits(keys(&volume)));
    }

    #[test]
    fn a_write_must_have_every_key_it_always_writes_and_no_other() {
        let fall_back = &RELAUNCH[5];
        assert!(fall_back.admits([STATE_SOURCE]));
        assert!(fall_back.admits([STATE_SOURCE, STATE_AS_OF]));
        assert!(!fall_back.admits([STATE_AS_OF]), "lifeboat:state-source is always written");
        assert!(!fall_back.admits([STATE_SOURCE, ROOT_IMAGE]), "not this write's key");
        assert!(!fall_back.admits([STATE_SOURCE, "team"]), "no user keys here");
        let replacement = &RELAUNCH[0];
        let base = [NODE, NAME, REPLACES, RESTORED_FROM, STATE_SOURCE];
        assert!(replacement.admits(base.into_iter().chain(["team", "cost-center"])), "the user's own keys");
        assert!(!replacement.admits(base.into_iter().chain([DRILL_KEPT])), "a lifeboat key is never a user's");
    }

    #[test]
    fn the_handler_makes_every_write_a_backup_makes_and_the_pruner_none() {
        let [(backup, b), (pruner, p), (handler, h)] = by_function();
        assert_eq!([backup, pruner, handler], ["scheduled-backup", "retention-pruner", "interruption-handler"]);
        assert!(p.is_empty());
        assert!(b.iter().all(|w| h.contains(w)));
        for w in all().filter(|w| w.operation != Operation::CreateTags) {
            assert_eq!(w.resource_tag, None, "{}: only a resource that exists carries a tag", w.what);
        }
    }
}
