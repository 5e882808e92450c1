//! The repair's own dry run on the node (the stack's repair document with
//! `--dry-run`): its preflight is the one list of what a repair needs, the
//! tools, etcd's data, the certificates, and what a relaunch onto a new IP
//! needs besides (kubeadm, the CAs, the certificates' SANs, disk space).

use serde::{Deserialize, Serialize};

/// The document's `args`: detect and preflight, nothing changed.
pub const ARGS: &str = "--dry-run --timeout 60";
/// The command's executionTimeout.
pub const TIMEOUT_SECONDS: u64 = 120;

/// The fields of the repair's result line preflight reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct DryRun {
    /// `dry-run` when its preflight passed, `failed` when not.
    pub result: String,
    pub step: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Whether a relaunch onto a new IP would pass the repair's preflight:
    /// `ok`, or what it lacks. Absent from a repair older than this check.
    #[serde(default)]
    pub relaunch: Option<String>,
}

/// The result, the last line of the output; `None` when the output has none
/// (another script's, a run cut short).
pub fn parse(output: &str) -> Option<DryRun> {
    let last = output.lines().rev().find(|l| !l.trim().is_empty())?;
    serde_json::from_str(last.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_read_and_anything_else_refused() {
        let out = "plan\n{\"result\":\"dry-run\",\"step\":\"preflight\",\"old_ip\":\"10.0.1.4\",\"warnings\":[\"w\"],\
                   \"relaunch\":\"ok\",\"message\":\"same IP\"}\n";
        let d = parse(out).unwrap();
        assert_eq!((d.result.as_str(), d.relaunch.as_deref(), d.warnings.len()), ("dry-run", Some("ok"), 1));
        assert_eq!(parse("lifeboat-probe=1\n"), None);
        assert_eq!(parse("{\"result\":\"dry-run\",\"step\":\"preflight\"}\ncut sh"), None);
    }
}
