//! What an invocation of interruption-handler returns, logs and publishes.

use super::failure::Failure;
use crate::backup;
use crate::ports::{CommandState, Market, Network};
use crate::prepare::Preparation;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A replacement was launched and checked.
    Relaunched,
    /// A replacement existed already (retry or duplicate event); the flow
    /// carried on from where it stood.
    Resumed,
    /// A replacement existed and was checked already: nothing left to do.
    AlreadyDone,
    /// A rebalance recommendation: an early backup, no relaunch.
    BackupTaken,
    /// A spot interruption that stops the instance: EC2 restarts it itself.
    Stopping,
    /// A restore drill whose clone came up healthy.
    DrillPassed,
    Ignored,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub instance_type: String,
    pub market: Market,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub step: &'static str,
    /// Milliseconds since the invocation started.
    pub at_ms: u64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandReport {
    pub command_id: String,
    #[serde(flatten)]
    pub state: CommandState,
    /// The script's result line, parsed.
    pub result: Option<Value>,
}

/// The instance that was lost (or, for a drill, the live node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OldInstance {
    pub id: String,
    pub private_ip: Option<String>,
}

/// The replacement (or a drill's clone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replacement {
    pub id: String,
    pub private_ip: Option<String>,
    pub same_ip: Option<bool>,
    pub instance_type: Option<String>,
    pub market: Option<Market>,
    pub network: Option<Network>,
}

/// Where the state the node came back with is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The old instance's own volumes: nothing lost.
    OldVolumes,
    /// The image started at the interruption.
    FinalImage,
    /// The newest backup image.
    Backup,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::OldVolumes => "old-volumes",
            Source::FinalImage => "final-image",
            Source::Backup => "backup",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        [Source::OldVolumes, Source::FinalImage, Source::Backup].into_iter().find(|x| x.as_str() == s)
    }
}

/// The state the node came back with: how much was lost, at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateReport {
    pub source: Source,
    /// The image launched from (for old volumes: only its root was used
    /// until the old root replaced it).
    pub image_id: Option<String>,
    /// The old instance's volumes in use again.
    pub volumes: Vec<String>,
    /// The termination time for old volumes, the image's creation otherwise.
    pub as_of: Option<DateTime<Utc>>,
    /// Why a better source could not be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// What the boot guard did on the replacement this boot, as the repair
/// read it from the node (`/run/lifeboat/status`, kubelet's own state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guard {
    /// It released kubelet by itself: the machine booted from the disks and
    /// on the address the relaunch chose, etcd's data in place.
    SelfReleased,
    /// It held kubelet until the repair released it.
    Released,
    /// It still holds kubelet (kubelet never ran this boot).
    Held,
    /// No guard was confirmed: cloud-init did not run lifeboat's user
    /// data, or systemd did not load its drop-in, so Kubernetes may have
    /// started before the repair.
    NotConfirmed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelaunchReport {
    pub trigger: String,
    pub time: DateTime<Utc>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub node: Option<String>,
    pub old: Option<OldInstance>,
    pub replacement: Option<Replacement>,
    pub state: Option<StateReport>,
    pub guard: Option<Guard>,
    pub launch_attempts: Vec<Attempt>,
    /// The final (or, before a rebalance or a spot stop, early) backup.
    pub backup: Option<backup::NodeResult>,
    /// Preparing the replacement for the next interruption.
    pub preparation: Option<Preparation>,
    pub command: Option<CommandReport>,
    /// A drill's health check.
    pub health: Option<CommandReport>,
    /// `sent`, or why the notification could not be (none when there was
    /// nothing to tell, or no topic).
    pub notification: Option<String>,
    pub timeline: Vec<Step>,
    /// From the start of the invocation to its last step.
    pub duration_ms: u64,
}

impl RelaunchReport {
    pub fn new(trigger: String, time: DateTime<Utc>) -> RelaunchReport {
        RelaunchReport {
            trigger,
            time,
            outcome: Outcome::Relaunched,
            reason: None,
            failure: None,
            node: None,
            old: None,
            replacement: None,
            state: None,
            guard: None,
            launch_attempts: Vec::new(),
            backup: None,
            preparation: None,
            command: None,
            health: None,
            notification: None,
            timeline: Vec::new(),
            duration_ms: 0,
        }
    }

    fn is_drill(&self) -> bool {
        self.trigger == "test-restore"
    }

    /// The notification's subject, for the outcomes operators hear about.
    pub fn subject(&self) -> Option<String> {
        let node = self.node.as_deref().unwrap_or("?");
        let subject = match self.outcome {
            Outcome::Relaunched | Outcome::Resumed => format!("lifeboat: {node} relaunched"),
            Outcome::DrillPassed => format!("lifeboat: restore drill of {node} passed"),
            Outcome::Failed if self.is_drill() => format!("lifeboat: restore drill of {node} FAILED"),
            Outcome::Failed => format!("lifeboat: relaunch of {node} FAILED"),
            Outcome::AlreadyDone | Outcome::BackupTaken | Outcome::Stopping | Outcome::Ignored => return None,
        };
        // SNS subjects hold at most 100 characters.
        Some(subject.chars().take(100).collect())
    }

    /// A few lines a person reads first: what happened, the state the node
    /// came back with, the timeline.
    pub fn summary(&self) -> String {
        let node = self.node.as_deref().unwrap_or("?");
        let mut lines = vec![match (self.outcome, &self.replacement) {
            (Outcome::DrillPassed, Some(r)) => format!("The restore drill of {node} passed on clone {}.", r.id),
            (Outcome::Relaunched | Outcome::Resumed, Some(r)) => format!(
                "{node} was relaunched as {} on {} ({}).",
                r.id,
                r.private_ip.as_deref().unwrap_or("?"),
                if r.same_ip == Some(true) { "the same private IP" } else { "a NEW private IP" }
            ),
            (Outcome::Failed, _) => format!(
                "The {} of {node} FAILED: {}",
                if self.is_drill() { "restore drill" } else { "relaunch" },
                self.reason.as_deref().unwrap_or("?")
            ),
            (outcome, _) => format!("{node}: {outcome:?}"),
        }];
        if let Some(state) = &self.state {
            let as_of = state.as_of.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or("?".into());
            lines.push(match state.source {
                Source::OldVolumes => format!("State: the old instance's own disks, as of {as_of} (nothing lost)."),
                Source::FinalImage => format!("State: the image taken at the interruption, as of {as_of}."),
                Source::Backup => format!("State: the backup image of {as_of}; changes made after it are LOST."),
            });
            if let Some(fallback) = &state.fallback {
                lines.push(format!("Why not better: {fallback}"));
            }
        }
        let refused_spot: Vec<&str> = self
            .launch_attempts
            .iter()
            .filter(|a| a.market == Market::Spot)
            .map(|a| a.instance_type.as_str())
            .collect();
        if !self.is_drill()
            && !refused_spot.is_empty()
            && self.replacement.as_ref().is_some_and(|r| r.market == Some(Market::OnDemand))
        {
            lines.push(format!(
                "Market: ON-DEMAND, spot refused ({}); the instance is tagged {}.",
                refused_spot.join(", "),
                crate::tags::MARKET_FALLBACK
            ));
        }
        match self.guard {
            Some(Guard::NotConfirmed) => lines.push(
                "The boot guard was not confirmed: cloud-init did not run lifeboat's user data, \
                 or systemd did not load its drop-in."
                    .into(),
            ),
            Some(Guard::Held) => lines.push(
                "The boot guard still holds kubelet: the control plane is NOT serving \
                 (release it with: sudo sh /run/lifeboat/guard release)."
                    .into(),
            ),
            Some(Guard::SelfReleased) => {
                lines.push("The boot guard released kubelet at boot, before the repair ran.".into())
            }
            Some(Guard::Released) | None => {}
        }
        lines.push(String::new());
        for step in &self.timeline {
            lines.push(format!("{:>8.1} s  {:<18} {}", step.at_ms as f64 / 1000.0, step.step, step.detail));
        }
        lines.join("\n")
    }

    /// EMF lines for a relaunch that happened (`Relaunched`, with
    /// `RelaunchSeconds`) or failed (`RelaunchFailed`, which an alarm
    /// watches), and for drills (`DrillPassed`/`DrillFailed`, `DrillSeconds`).
    pub fn metrics(&self, at: DateTime<Utc>) -> Vec<String> {
        let node = self.node.as_deref().unwrap_or("unknown");
        let seconds = self.duration_ms as f64 / 1000.0;
        let (metric, duration) = match (self.outcome, self.is_drill()) {
            (Outcome::Relaunched | Outcome::Resumed, _) => ("Relaunched", Some("RelaunchSeconds")),
            (Outcome::DrillPassed, _) => ("DrillPassed", Some("DrillSeconds")),
            (Outcome::Failed, true) => ("DrillFailed", None),
            (Outcome::Failed, false) => ("RelaunchFailed", None),
            _ => return Vec::new(),
        };
        let mut lines = vec![crate::metrics::count(metric, node, at)];
        lines.extend(duration.map(|d| crate::metrics::value(d, "Seconds", seconds, Some(node), at)));
        lines
    }
}
