//! `lifeboat status`: what is protected, as AWS records it (instances, their
//! tags, the images and their tags; never the logs). [`nodes`] decides what
//! each row says, as a pure function.

use crate::ports::Stack;
use crate::stack;
use chrono::{DateTime, Utc};
use lifeboat_core::model::{Image, ImageState, Instance, InstanceState};
use lifeboat_core::tags;
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    pub image_id: String,
    pub name: String,
    pub created: Option<DateTime<Utc>>,
    pub age_seconds: Option<i64>,
}

/// What the running instance's generation tags say about how it came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relaunch {
    pub replaces: String,
    pub state_source: Option<String>,
    pub state_as_of: Option<String>,
    pub launched: Option<DateTime<Utc>>,
}

/// Why an on-demand node is not on spot: the relaunch that fell back to
/// on-demand recorded it on the instance (`lifeboat:market-fallback`).
/// Absent on a spot node, and on one launched on-demand by choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketFallback {
    /// When the relaunch fell back (`None`: the recorded time is unreadable).
    pub since: Option<DateTime<Utc>>,
    pub age_seconds: Option<i64>,
    /// The spot pools that refused, and how.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrillOutcome {
    Passed,
    Failed,
}

/// The newest `lifeboat:drill` tag among the node's images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drill {
    pub outcome: DrillOutcome,
    pub at: DateTime<Utc>,
    pub image_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KeptCount {
    pub kept: usize,
    pub total: usize,
}

/// The boot guard's last decision on the instance's console: the guard
/// prints `lifeboat-guard: <guard>: <reason>` (held, self-released,
/// released; the boothook's not-confirmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootGuard {
    pub guard: String,
    pub reason: String,
}

impl BootGuard {
    pub fn is_held(&self) -> bool {
        self.guard == "held"
    }
}

/// What to do about a held guard: release it by hand once etcd's data is
/// checked (the guard itself refuses while it is not in place).
pub const HELD_FIX: &str = "check etcd's data on the node (its data dir holds member/snap/db and member/wal), then: \
                            sudo sh /run/lifeboat/guard release";

/// The last guard line of a console output. Anything before `lifeboat-guard: `
/// (a timestamp, journald's `sh[123]: `) is left out.
pub fn last_guard(console: &str) -> Option<BootGuard> {
    const MARK: &str = "lifeboat-guard: ";
    console.lines().rev().find_map(|line| {
        let line = line.trim_end_matches(['\r', ' ']);
        let (_, said) = line.split_once(MARK)?;
        let (guard, reason) = said.split_once(": ")?;
        ["held", "self-released", "released", "not-confirmed"]
            .contains(&guard)
            .then(|| BootGuard { guard: guard.to_string(), reason: reason.to_string() })
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub instance: Option<String>,
    pub state: Option<String>,
    pub instance_type: Option<String>,
    /// `spot` or `on-demand`.
    pub market: Option<&'static str>,
    /// On-demand because a relaunch found no spot capacity: since when, why.
    pub market_fallback: Option<MarketFallback>,
    pub private_ip: Option<String>,
    pub interface_kept: Option<bool>,
    pub volumes_kept: Option<KeptCount>,
    pub newest_backup: Option<Backup>,
    /// Available backups.
    pub backups: usize,
    pub last_relaunch: Option<Relaunch>,
    pub last_drill: Option<Drill>,
    /// The boot guard's last decision on the running instance's console
    /// (`None`: not running, or no guard line).
    pub boot_guard: Option<BootGuard>,
    /// Why the console could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_guard_error: Option<String>,
}

/// Reads `passed 2026-11-30T03:00:00Z` (or `failed ...`), the value a drill
/// puts on the image it proved.
pub fn parse_drill(value: &str) -> Option<(DrillOutcome, DateTime<Utc>)> {
    let record = tags::DrillRecord::parse(value)?;
    Some((if record.passed { DrillOutcome::Passed } else { DrillOutcome::Failed }, record.at))
}

/// The instance that stands for the node: the newest running one, else the
/// newest of any state.
fn current<'a>(instances: &[&'a Instance]) -> Option<&'a Instance> {
    let newest = |it: &mut dyn Iterator<Item = &'a Instance>| it.max_by_key(|i| i.launch_time);
    newest(&mut instances.iter().copied().filter(|i| i.state == InstanceState::Running))
        .or_else(|| newest(&mut instances.iter().copied()))
}

fn relaunch(i: &Instance) -> Option<Relaunch> {
    Some(Relaunch {
        replaces: i.tags.get(tags::REPLACES)?.clone(),
        state_source: i.tags.get(tags::STATE_SOURCE).cloned(),
        state_as_of: i.tags.get(tags::STATE_AS_OF).cloned(),
        launched: i.launch_time,
    })
}

/// The fallback record of an on-demand instance, if it has one.
fn market_fallback(i: &Instance, now: DateTime<Utc>) -> Option<MarketFallback> {
    if i.spot {
        return None;
    }
    let since = DateTime::parse_from_rfc3339(i.tags.get(tags::MARKET_FALLBACK)?.trim()).ok().map(|t| t.to_utc());
    Some(MarketFallback {
        since,
        age_seconds: since.map(|t| (now - t).num_seconds()),
        reason: i.tags.get(tags::MARKET_FALLBACK_REASON).filter(|r| !r.is_empty()).cloned(),
    })
}

fn last_drill(images: &[&Image]) -> Option<Drill> {
    images
        .iter()
        .filter_map(|img| {
            let (outcome, at) = parse_drill(img.tags.get(tags::DRILL)?)?;
            Some(Drill { outcome, at, image_id: img.id.clone() })
        })
        .max_by_key(|d| d.at)
}

fn row(node: &str, instance: Option<&Instance>, images: &[&Image], now: DateTime<Utc>) -> NodeStatus {
    let available: Vec<&&Image> = images.iter().filter(|i| i.state == ImageState::Available).collect();
    let newest = available.iter().max_by_key(|i| i.creation_date).map(|i| Backup {
        image_id: i.id.clone(),
        name: i.name.clone(),
        created: i.creation_date,
        age_seconds: i.creation_date.map(|c| (now - c).num_seconds()),
    });
    let live = instance.filter(|i| !i.state.is_gone());
    NodeStatus {
        node: node.to_string(),
        instance: instance.map(|i| i.id.clone()),
        state: instance.map(|i| i.state.to_string()),
        instance_type: instance.map(|i| i.instance_type.clone()).filter(|t| !t.is_empty()),
        market: instance.map(|i| if i.spot { "spot" } else { "on-demand" }),
        market_fallback: instance.and_then(|i| market_fallback(i, now)),
        private_ip: instance.and_then(|i| i.private_ip.clone()),
        interface_kept: live.and_then(|i| i.primary_interface.as_ref()).map(|a| !a.delete_on_termination),
        volumes_kept: live.map(|i| KeptCount {
            kept: i.volumes.iter().filter(|v| !v.delete_on_termination).count(),
            total: i.volumes.len(),
        }),
        newest_backup: newest,
        backups: available.len(),
        last_relaunch: instance.and_then(relaunch),
        last_drill: last_drill(images),
        boot_guard: None,
        boot_guard_error: None,
    }
}

/// One row per node known from its instances or its backups, by name;
/// `only` keeps one node.
pub fn nodes(
    node_tag: &str,
    instances: &[Instance],
    images: &[Image],
    only: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<NodeStatus> {
    let name = |tags: &lifeboat_core::model::Tags| tags.get(node_tag).cloned();
    let mut names: BTreeSet<String> =
        instances.iter().filter_map(|i| name(&i.tags)).chain(images.iter().filter_map(|i| name(&i.tags))).collect();
    if let Some(only) = only {
        names = BTreeSet::from([only.to_string()]);
    }
    names
        .iter()
        .map(|node| {
            let mine: Vec<&Instance> = instances.iter().filter(|i| name(&i.tags).as_deref() == Some(node)).collect();
            let backups: Vec<&Image> = images.iter().filter(|i| name(&i.tags).as_deref() == Some(node)).collect();
            row(node, current(&mine), &backups, now)
        })
        .collect()
}

/// The stack at a glance: `lifeboat 0.1.0 (UPDATE_COMPLETE), dashboard lifeboat`.
pub fn stack_line(name: &str, stack: Option<&Stack>) -> String {
    let Some(s) = stack else { return format!("stack {name}: not deployed in this region") };
    let mut line = format!("stack {name} {} ({})", s.output(stack::VERSION).unwrap_or("(no version)"), s.status);
    if let Some(d) = s.output(stack::DASHBOARD) {
        line.push_str(&format!(", dashboard {d}"));
    }
    if let Some(t) = s.output(stack::TOPIC) {
        line.push_str(&format!(", notifications to {t}"));
    }
    line
}

/// `3 d 4 h`, `5 h 12 min`, `42 min`, `12 s`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests;
