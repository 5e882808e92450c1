//! Every tag lifeboat reads or writes: the contract between its functions and
//! with its own earlier runs (a retry, a later relaunch, the pruner), so it
//! lives in one place. The node tag's key is configurable
//! (`LIFEBOAT_NODE_TAG`, default [`crate::config::DEFAULT_NODE_TAG`]); every
//! other key is fixed. Which function writes which keys where is declared
//! in [`writes`].

use crate::model::Tags;

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
/// On a node's EBS volume: `root` or `data`.
pub const VOLUME_ROLE: &str = "lifeboat:volume";

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
        (VOLUME_ROLE.to_string(), if root { "root" } else { "data" }.to_string()),
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
