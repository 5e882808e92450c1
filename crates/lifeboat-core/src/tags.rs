//! Every tag lifeboat reads or writes: the contract between its functions and
//! with its own earlier runs (a retry, a later relaunch, the pruner), so it
//! lives in one place. The node tag's key is configurable
//! (`LIFEBOAT_NODE_TAG`, default [`crate::config::DEFAULT_NODE_TAG`]); every
//! other key is fixed. Which function writes which keys where is declared
//! in [`writes`].

use crate::model::{Tags, Volume};
use chrono::{DateTime, SecondsFormat, Utc};

pub mod writes;

pub const NAME: &str = "Name";
/// The tag the original cron script put on its images; kept so existing
/// tooling still recognises lifeboat's backups.
pub const AUTO_BACKUP: &str = "AutoBackup";

// --- Images and their snapshots ----------------------------------------------

/// The instance an image was made from.
pub const SOURCE_INSTANCE: &str = "lifeboat:source-instance";
/// `scheduled`, `final` (at an interruption), `early` (rebalance
/// recommendation or a spot stop).
pub const KIND: &str = "lifeboat:kind";
/// On an image a restore drill used: `passed <time>` or `failed <time>`,
/// the proof (or not) that it comes back healthy.
pub const DRILL: &str = "lifeboat:drill";
/// Prefix of the launch spec recorded on each image (see [`crate::spec`]).
pub const SPEC_PREFIX: &str = "lifeboat:spec-";

/// The launch spec's keys, each under [`SPEC_PREFIX`]: what a relaunch
/// needs when EC2 no longer describes the dead instance.
pub mod spec {
    pub const TYPE: &str = "lifeboat:spec-instance-type";
    pub const ZONE: &str = "lifeboat:spec-availability-zone";
    pub const SUBNET: &str = "lifeboat:spec-subnet";
    pub const IP: &str = "lifeboat:spec-private-ip";
    pub const GROUPS: &str = "lifeboat:spec-security-groups";
    pub const INTERFACE: &str = "lifeboat:spec-interface";
    pub const KEY: &str = "lifeboat:spec-key-name";
    pub const PROFILE: &str = "lifeboat:spec-instance-profile";
    pub const TOKENS: &str = "lifeboat:spec-http-tokens";
    pub const HOPS: &str = "lifeboat:spec-hop-limit";
    pub const MARKET: &str = "lifeboat:spec-market";
}

// --- Instances ------------------------------------------------------------------

/// On a replacement: the instance it replaces. Finding it is how a retry,
/// a duplicate event or a late one resumes instead of launching again.
pub const REPLACES: &str = "lifeboat:replaces";
/// On a replacement: the image it was launched from.
pub const RESTORED_FROM: &str = "lifeboat:restored-from";
/// On a replacement: which state it came back with (`old-volumes`,
/// `final-image`, `backup`), read back when a retry resumes.
pub const STATE_SOURCE: &str = "lifeboat:state-source";
/// On a replacement: the time that state is from (RFC 3339).
pub const STATE_AS_OF: &str = "lifeboat:state-as-of";
/// On a replacement that swaps in the old root: that volume.
pub const ROOT_VOLUME: &str = "lifeboat:root-volume";
/// On a replacement whose old root could not be swapped in: the final
/// image whose root replaces the one it booted.
pub const ROOT_IMAGE: &str = "lifeboat:root-image";
/// On a replacement a root swap left without a root volume: the task. The
/// only instances of a node lifeboat may terminate (the stack's IAM names
/// this tag).
pub const ROOT_LOST: &str = "lifeboat:root-lost";
/// On a replacement launched on-demand because every spot pool refused it
/// (capacity `spot-then-on-demand`): when (RFC 3339). The node is meant to
/// run on spot: its backups still record spot. Never copied to the next
/// replacement, which records its own fallback or none.
pub const MARKET_FALLBACK: &str = "lifeboat:market-fallback";
/// With [`MARKET_FALLBACK`]: the spot pools that refused, and how
/// (`m6i.large InsufficientInstanceCapacity, m5.large terminated at launch`).
pub const MARKET_FALLBACK_REASON: &str = "lifeboat:market-fallback-reason";
/// On a drill clone left running on purpose (`keep`): never swept by a
/// later drill.
pub const DRILL_KEPT: &str = "lifeboat:drill-kept";
/// On a restore drill's clone and everything made for it: the node it is a
/// drill of. Never the node tag, so a clone is never backed up, pruned as a
/// node or taken for a replacement.
pub const DRILL_OF: &str = "lifeboat:drill-of";

// --- Volumes --------------------------------------------------------------------

/// On a node's EBS volume: the instance it belongs to (set while attached,
/// so after a termination it names the dead instance).
pub const INSTANCE: &str = "lifeboat:instance";
/// On a node's EBS volume: its device name on that instance.
pub const DEVICE: &str = "lifeboat:device";
/// On a node's EBS volume: `root` or `data` ([`VolumeRole`]).
pub const VOLUME_ROLE: &str = "lifeboat:volume";

/// A node's volume as [`VOLUME_ROLE`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeRole {
    Root,
    Data,
}

impl VolumeRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            VolumeRole::Root => "root",
            VolumeRole::Data => "data",
        }
    }

    /// The role the volume's tag records, if any.
    pub fn of(volume: &Volume) -> Option<VolumeRole> {
        match volume.tags.get(VOLUME_ROLE).map(String::as_str) {
            Some("root") => Some(VolumeRole::Root),
            Some("data") => Some(VolumeRole::Data),
            _ => None,
        }
    }
}

/// The value of [`DRILL`] on an image: `passed <RFC 3339 time>` or
/// `failed <time>`, written by a drill, read by `lifeboat status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrillRecord {
    pub passed: bool,
    pub at: DateTime<Utc>,
}

impl DrillRecord {
    pub fn value(&self) -> String {
        let outcome = if self.passed { "passed" } else { "failed" };
        format!("{outcome} {}", self.at.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    /// The record a tag value holds; `None` for anything else.
    pub fn parse(value: &str) -> Option<DrillRecord> {
        let (outcome, at) = value.trim().split_once(' ')?;
        let passed = match outcome {
            "passed" => true,
            "failed" => false,
            _ => return None,
        };
        let at = DateTime::parse_from_rfc3339(at.trim()).ok()?.with_timezone(&Utc);
        Some(DrillRecord { passed, at })
    }
}

/// The tags of a scheduled (or final, or early) backup, for the image and
/// for its snapshots.
pub fn backup(node_tag: &str, node: &str, instance_id: &str, name: &str, kind: &str) -> Tags {
    Tags::from([
        (NAME.to_string(), name.to_string()),
        (node_tag.to_string(), node.to_string()),
        (SOURCE_INSTANCE.to_string(), instance_id.to_string()),
        (KIND.to_string(), kind.to_string()),
        (AUTO_BACKUP.to_string(), "true".to_string()),
    ])
}

/// The tags a node's volume carries once prepared.
pub fn volume(node_tag: &str, node: &str, instance_id: &str, device: &str, root: bool) -> Tags {
    Tags::from([
        (node_tag.to_string(), node.to_string()),
        (INSTANCE.to_string(), instance_id.to_string()),
        (DEVICE.to_string(), device.to_string()),
        (VOLUME_ROLE.to_string(), if root { VolumeRole::Root } else { VolumeRole::Data }.as_str().to_string()),
    ])
}

/// Whether a tag was written by lifeboat for one generation of a node (and
/// so must not be copied onto the next one).
pub fn is_generation_marker(key: &str) -> bool {
    matches!(
        key,
        REPLACES
            | RESTORED_FROM
            | STATE_SOURCE
            | STATE_AS_OF
            | ROOT_VOLUME
            | ROOT_IMAGE
            | ROOT_LOST
            | MARKET_FALLBACK
            | MARKET_FALLBACK_REASON
    )
}

#[cfg(test)]
mod record_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_drill_record_reads_back_what_it_writes_and_nothing_else() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        for passed in [true, false] {
            let record = DrillRecord { passed, at };
            assert_eq!(DrillRecord::parse(&record.value()), Some(record));
        }
        assert_eq!(DrillRecord { passed: true, at }.value(), "passed 2026-11-29T03:00:00Z");
        assert_eq!(DrillRecord::parse("failed 2026-11-29T04:00:00+01:00"), Some(DrillRecord { passed: false, at }));
        for bad in ["passed", "passed yesterday", "ok 2026-11-29T03:00:00Z", ""] {
            assert_eq!(DrillRecord::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_volume_role_is_what_its_tag_says_and_nothing_else() {
        let tagged = |role: Option<&str>| Volume {
            id: "vol-1".into(),
            state: crate::model::VolumeState::Available,
            availability_zone: "eu-west-1a".into(),
            encrypted: false,
            size_gib: 8,
            create_time: None,
            attached_to: None,
            tags: role.map(|r| Tags::from([(VOLUME_ROLE.to_string(), r.to_string())])).unwrap_or_default(),
        };
        assert_eq!(VolumeRole::of(&tagged(Some("root"))), Some(VolumeRole::Root));
        assert_eq!(VolumeRole::of(&tagged(Some("data"))), Some(VolumeRole::Data));
        assert_eq!(VolumeRole::of(&tagged(Some("Root"))), None);
        assert_eq!(VolumeRole::of(&tagged(None)), None);
        let written = volume("lifeboat:node", "k8s-master", "i-1", "/dev/sdf", false);
        assert_eq!(written[VOLUME_ROLE], VolumeRole::Data.as_str());
    }
}
