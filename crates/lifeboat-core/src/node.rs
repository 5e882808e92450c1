//! A node's name, checked once, and the names lifeboat derives from it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

/// `-YYYYMMDD-HHMM`, appended to the node name for a scheduled backup.
const SLOT_SUFFIX_LEN: usize = 14;
/// EC2 limits AMI names to 128 characters.
const MAX_AMI_NAME: usize = 128;
/// SSM limits a command's comment to 100 characters.
const MAX_COMMENT: usize = 100;

/// The identity that survives replacements: the value of the node tag. It
/// makes valid AMI names once a slot is appended: 1 to 114 characters from
/// letters, digits and `()[] ./-'@_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NodeName(String);

/// What is wrong with a node name (the message follows the name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {} characters", MAX_AMI_NAME - SLOT_SUFFIX_LEN)]
    TooLong,
    #[error("character {0:?} is not allowed in an AMI name")]
    Character(char),
}

impl NodeName {
    pub fn new(name: &str) -> Result<NodeName, NodeNameError> {
        if name.is_empty() {
            return Err(NodeNameError::Empty);
        }
        if name.len() + SLOT_SUFFIX_LEN > MAX_AMI_NAME {
            return Err(NodeNameError::TooLong);
        }
        if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(*c))) {
            return Err(NodeNameError::Character(c));
        }
        Ok(NodeName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<node>-<YYYYMMDD>-<HHMM>` of the slot in UTC: a scheduled backup.
    pub fn slot_image(&self, slot: DateTime<Utc>) -> String {
        format!("{self}-{}", slot.format("%Y%m%d-%H%M"))
    }

    /// `<node>-<suffix>`, the node part shortened (never the suffix) so the
    /// whole is a valid AMI name: the suffix is what makes it unique.
    pub fn image(&self, suffix: &str) -> String {
        let room = MAX_AMI_NAME.saturating_sub(suffix.len() + 1);
        format!("{}-{suffix}", truncate(&self.0, room))
    }

    /// `lifeboat <what> <node>`, within SSM's 100 characters: how a retry
    /// finds the command again, so it is the same on every call.
    pub fn comment(&self, what: &str) -> String {
        truncate(&format!("lifeboat {what} {self}"), MAX_COMMENT).to_string()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    // Node names are ASCII (checked above), comments built from them too.
    &s[..s.len().min(max)]
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_are_checked_once() {
        assert!(NodeName::new("k8s-master").is_ok());
        assert_eq!(NodeName::new("").unwrap_err().to_string(), "is empty");
        assert!(NodeName::new(&"n".repeat(115)).unwrap_err().to_string().contains("longer than 114"));
        assert!(NodeName::new("k8s{master}").unwrap_err().to_string().contains("'{'"));
    }

    #[test]
    fn derived_names_fit_ec2_and_ssm_whatever_the_node_name() {
        let longest = NodeName::new(&"n".repeat(114)).unwrap();
        let slot = Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap();
        assert_eq!(longest.slot_image(slot).len(), 128);
        let final_name = longest.image("final-i-0123456789abcdef0");
        assert_eq!(final_name.len(), 128);
        assert!(final_name.ends_with("-final-i-0123456789abcdef0"));
        let comment = longest.comment("drill-health");
        assert_eq!(comment.len(), 100);
        assert!(comment.starts_with("lifeboat drill-health nnn"));
        let short = NodeName::new("k8s-master").unwrap();
        assert_eq!(short.image("final-i-1"), "k8s-master-final-i-1");
        assert_eq!(short.comment("repair"), "lifeboat repair k8s-master");
    }
}
