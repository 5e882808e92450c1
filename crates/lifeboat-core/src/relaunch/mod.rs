//! interruption-handler: event → plan → effects → report.
//!
//! A relaunch, step by step (see [`Flow::relaunch`]): find the node's newest
//! generation; start a final backup; wait for the termination; choose the
//! state to come back with (the old instance's own volumes, else the final
//! image, else the newest backup); launch on the kept interface with
//! lifeboat's boot guard; give the replacement its old disks (data volumes
//! attached, the old root swapped in); prepare it for the next interruption;
//! repair Kubernetes over SSM, which releases the guard. Every step resumes
//! from what AWS shows: the replacement is found by its `lifeboat:replaces`
//! tag, a launch by its ClientToken, the swap by its task, the repair by its
//! command, so a retried, duplicated or concurrent invocation converges on
//! one replacement. Restore drills are in [`drill`].

mod disks;
mod drill;
mod event;
mod failure;
mod launch;
mod repair;
mod report;
mod source;
mod wait;

pub use drill::fence_addresses;
pub use event::{Request, parse_event};
pub use failure::{Failure, RelaunchError};
pub use launch::{can_replace_root, client_token, fallback_tags, launch_plan, replacement_tags, self_release};
pub use repair::{NotHealthy, repair_args, repair_verdict};
pub use report::{
    Attempt, CommandReport, Guard, OldInstance, Outcome, RelaunchReport, Replacement, Source, StateReport, Step,
};
pub use source::{OldDisks, StatePlan, Unusable, launch_devices, newest_available, old_disks};
pub use wait::{COMMAND_TIMEOUT_SECONDS, HEALTH_TIMEOUT_SECONDS, REPAIR_TIMEOUT_SECONDS, Timing};

use crate::backup;
use crate::config::Config;
use crate::event::EventError;
use crate::model::{Instance, InstanceState};
use crate::node::NodeName;
use crate::ports::{DeleteVolume, Describe, ImageSpec, Imaging, Launching, Market, Notifier, Port, Preparing, Ssm};
use crate::spec::LaunchSpec;
use crate::tags;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

/// What interruption-handler may do with EC2.
pub trait RelaunchCloud: Describe + Imaging + Preparing + Launching + DeleteVolume {}
/// [`handle`]'s ports: [`RelaunchCloud`]'s, SSM and the notifier, for the
/// contract ([`crate::contract`]).
pub const PORTS: &[Port] =
    &[Port::Describe, Port::Imaging, Port::Preparing, Port::Launching, Port::DeleteVolume, Port::Ssm, Port::Notifier];
impl<T: Describe + Imaging + Preparing + Launching + DeleteVolume> RelaunchCloud for T {}

/// The cloud the flow works in.
pub struct Cloud<'a, E, S, N> {
    pub ec2: &'a E,
    pub ssm: &'a S,
    pub notifier: &'a N,
}

/// Parses the event and runs the flow. `deadline` is the Lambda's: waits stop
/// short of it, and the retry resumes.
pub async fn handle<E: RelaunchCloud, S: Ssm, N: Notifier>(
    cloud: Cloud<'_, E, S, N>,
    config: &Config,
    timing: Timing,
    event: &Value,
    now: DateTime<Utc>,
    deadline: Option<Instant>,
) -> Result<RelaunchReport, RelaunchError> {
    let (request, time) = parse_event(event, now)?;
    if matches!(request, Request::Drill { keep: true, .. }) && !config.drill_allow_keep {
        return Err(RelaunchError::Event(EventError::Detail(
            "\"keep\": true is refused: a kept clone is a full copy of the cluster and its secrets; \
             the deployment must allow it with LIFEBOAT_DRILL_ALLOW_KEEP=true"
                .into(),
        )));
    }
    let mut flow = Flow {
        ec2: cloud.ec2,
        ssm: cloud.ssm,
        config,
        timing,
        deadline,
        started: Instant::now(),
        now,
        report: RelaunchReport::new(request.trigger(), time),
        dead_pools: Vec::new(),
    };
    let result = flow.run(request, time).await;
    if let Err(failure) = &result {
        tracing::error!(node = ?flow.report.node, failure = %failure, "relaunch failed");
        flow.step("failed", failure.to_string());
        flow.report.outcome = Outcome::Failed;
        flow.report.reason = Some(failure.to_string());
        flow.report.failure = Some(failure.clone());
    }
    let mut report = flow.report;
    report.duration_ms = report.timeline.last().map_or(0, |s| s.at_ms);
    notify(cloud.notifier, config, &mut report).await;
    match result {
        Ok(()) => Ok(report),
        Err(_) => Err(RelaunchError::Failed(Box::new(report))),
    }
}

/// Publishes the report to `LIFEBOAT_NOTIFY_TOPIC_ARN` when its outcome is
/// news: a summary a person reads first, then the JSON. A notification that
/// fails is recorded in the report, not retried: the outcome stands, and the
/// logs and alarms carry it too.
async fn notify<N: Notifier>(notifier: &N, config: &Config, report: &mut RelaunchReport) {
    let (Some(topic), Some(subject)) = (&config.notify_topic_arn, report.subject()) else { return };
    let json = serde_json::to_string_pretty(&*report).unwrap_or_default();
    let message = format!("{}\n\n{json}", report.summary());
    report.notification = Some(match notifier.publish(topic, &subject, &message).await {
        Ok(()) => "sent".to_string(),
        Err(e) => {
            tracing::error!(error = %e, "notification failed");
            format!("failed: {e}")
        }
    });
}

/// Replacements one invocation launches at most for one node, each after
/// the one before was lost to its own launch or recovery.
const ROUNDS: usize = 3;

/// The instance that was lost, as far as AWS still tells.
#[derive(Debug, Clone)]
struct Dead {
    node: NodeName,
    id: String,
    /// As EC2 last described it; `None` once EC2 forgot it.
    instance: Option<Instance>,
    /// When it was seen terminated: the time its disks are from.
    gone_at: Option<DateTime<Utc>>,
    /// The lost generations before it this invocation followed, nearest
    /// first.
    lineage: Vec<String>,
}

impl Dead {
    fn new(node: NodeName, id: String, instance: Option<Instance>) -> Dead {
        Dead { node, id, instance, gone_at: None, lineage: Vec::new() }
    }

    /// Whose volumes it left, nearest first: its own, or, for a replacement
    /// lost before it adopted its disks, those a generation before it still
    /// names (several, when more than one was lost so).
    fn volume_owners(&self) -> Vec<String> {
        let mut owners = vec![self.id.clone()];
        owners.extend(self.lineage.iter().cloned());
        let predecessor = self.instance.as_ref().and_then(|i| i.tags.get(tags::REPLACES));
        owners.extend(predecessor.filter(|p| !owners.contains(p)).cloned());
        owners
    }

    /// The name of the image started at its interruption.
    fn final_image_name(&self) -> String {
        self.node.image(&format!("final-{}", self.id))
    }
}

struct Flow<'a, E, S> {
    ec2: &'a E,
    ssm: &'a S,
    config: &'a Config,
    timing: Timing,
    deadline: Option<Instant>,
    started: Instant,
    /// The invocation's time.
    now: DateTime<Utc>,
    report: RelaunchReport,
    /// The pools (type, market) where EC2 ended an instance of this node
    /// during its launch, and that instance: never tried again.
    dead_pools: Vec<(String, Market, String)>,
}

impl<E: RelaunchCloud, S: Ssm> Flow<'_, E, S> {
    fn step(&mut self, step: &'static str, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::info!(node = ?self.report.node, step, detail = %detail, "relaunch step");
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.report.timeline.push(Step { step, at_ms, detail });
    }

    fn ignore(&mut self, reason: String) {
        self.step("ignored", reason.clone());
        self.report.outcome = Outcome::Ignored;
        self.report.reason = Some(reason);
    }

    /// The wall-clock time now, on the flow's clock.
    fn wall_now(&self) -> DateTime<Utc> {
        self.now + chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }

    async fn run(&mut self, request: Request, time: DateTime<Utc>) -> Result<(), failure::Failure> {
        match request {
            Request::Ignore { reason } => {
                self.ignore(reason);
                Ok(())
            }
            Request::Relaunch { instance_id, .. } => match self.identify(&instance_id).await? {
                Some(dead) => self.relaunch(dead, time).await,
                None => Ok(()),
            },
            Request::Stop { instance_id, action } => self.early_backup(&instance_id, time, Some(action)).await,
            Request::Rebalance { instance_id } => self.early_backup(&instance_id, time, None).await,
            Request::Restore { node } => {
                let dead = self.restorable(node).await?;
                self.relaunch(dead, time).await
            }
            Request::Drill { node, keep } => self.drill(node, keep).await,
        }
    }

    /// The relaunch of a node whose instance `dead` was lost. A replacement
    /// EC2 ends during its launch, or that a root swap leaves without a root
    /// (terminated then), is lost too: the next round relaunches it, as any
    /// lost generation, on the same disks and never in a pool that ended
    /// one at its launch.
    async fn relaunch(&mut self, dead: Dead, time: DateTime<Utc>) -> Result<(), failure::Failure> {
        let dead = self.launched_by(dead).await?;
        for _ in 0..ROUNDS {
            let (mut generation, existing) = self.newest_generation(dead.clone()).await?;
            let replacement = match existing {
                Some(replacement) => self.resume(replacement),
                None => {
                    self.final_backup(&generation).await;
                    generation = self.wait_terminated(generation, time).await?;
                    let plan = self.choose_state(&generation).await?;
                    self.launch_replacement(&generation, &plan).await?
                }
            };
            let running = match self.wait_launched(&replacement).await? {
                Ok(running) => running,
                Err(gone) if gone.launch_failure().is_some() => {
                    self.terminated_at_launch(&gone);
                    continue;
                }
                Err(gone) => {
                    return Err(failure::Failure::InstanceGone { instance: gone.id, state: gone.state.to_string() });
                }
            };
            self.noticed_running(&running);
            if let disks::Disks::ReplacementLost = self.restore_disks(&generation, running).await? {
                continue;
            }
            self.wait_online(&replacement).await?;
            return self.repair(&replacement).await;
        }
        Err(failure::Failure::ReplacementsLost { node: dead.node.to_string(), rounds: ROUNDS })
    }

    /// The instance and its node, or `None` (and the report says why) when
    /// lifeboat does not manage it. An instance EC2 no longer describes
    /// (about an hour after its termination) is found through its backups.
    async fn identify(&mut self, instance_id: &str) -> Result<Option<Dead>, failure::Failure> {
        let node_tag = self.config.node_tag.clone();
        let (node, instance) = match self.ec2.instance(instance_id).await? {
            Some(instance) => match instance.tags.get(&node_tag) {
                Some(node) => (node.clone(), Some(instance)),
                None => {
                    self.ignore(format!("instance {instance_id} has no {node_tag} tag: not a node"));
                    return Ok(None);
                }
            },
            None => {
                let images = self.ec2.own_images().await?;
                let made_from = images.iter().find(|i| {
                    i.tags.get(tags::SOURCE_INSTANCE).map(String::as_str) == Some(instance_id)
                        && i.tags.contains_key(&node_tag)
                });
                let Some(image) = made_from else {
                    self.ignore(format!(
                        "instance {instance_id} is unknown (EC2 does not describe it, no backup names it)"
                    ));
                    return Ok(None);
                };
                self.step(
                    "forgotten",
                    format!("EC2 no longer describes {instance_id}; image {} names its node", image.id),
                );
                (image.tags[&node_tag].clone(), None)
            }
        };
        let node = match NodeName::new(&node) {
            Ok(node) => node,
            Err(reason) => {
                self.ignore(format!("instance {instance_id}: node name {node:?} {reason}"));
                return Ok(None);
            }
        };
        self.report.node = Some(node.to_string());
        self.report.old = Some(OldInstance {
            id: instance_id.to_string(),
            private_ip: instance.as_ref().and_then(|i| i.private_ip.clone()),
        });
        Ok(Some(Dead::new(node, instance_id.to_string(), instance)))
    }

    /// For a manual restore: the node's last instance. Refused while an
    /// instance of the node is alive (a relaunch would fight it for its IP),
    /// unless that instance is the replacement lifeboat launched for a gone
    /// one (a restore cut short and retried, or sent twice): then the gone
    /// one, so the relaunch resumes its replacement, as it does for the same
    /// warning twice.
    async fn restorable(&mut self, node: NodeName) -> Result<Dead, failure::Failure> {
        self.report.node = Some(node.to_string());
        let tagged = self.ec2.instances_with_tag(&self.config.node_tag).await?;
        let mut mine: Vec<Instance> =
            tagged.into_iter().filter(|i| i.tags.get(&self.config.node_tag) == Some(&node.to_string())).collect();
        if let Some(alive) = mine.iter().find(|i| !i.state.is_gone()) {
            let replaced = alive.tags.get(tags::REPLACES);
            if let Some(old) = replaced.filter(|old| !mine.iter().any(|i| &i.id == *old && !i.state.is_gone())) {
                let described = mine.iter().find(|i| &i.id == old).cloned();
                return Ok(Dead::new(node, old.clone(), described));
            }
            return Err(failure::Failure::NodeAlive {
                node: node.to_string(),
                instance: alive.id.clone(),
                state: alive.state.to_string(),
            });
        }
        mine.sort_by_key(|i| i.launch_time);
        let dead = match mine.pop() {
            Some(last) => Dead::new(node, last.id.clone(), Some(last)),
            None => {
                let id = self.last_known_instance(&node).await?;
                Dead::new(node, id, None)
            }
        };
        self.report.old = Some(OldInstance {
            id: dead.id.clone(),
            private_ip: dead.instance.as_ref().and_then(|i| i.private_ip.clone()),
        });
        Ok(dead)
    }

    /// The node's last instance when EC2 describes none: the one its
    /// preserved root belongs to, else the one its newest backup was made of.
    async fn last_known_instance(&mut self, node: &NodeName) -> Result<String, failure::Failure> {
        let volumes = self.ec2.volumes_tagged(&self.config.node_tag, Some(node.as_str())).await?;
        let root = volumes
            .iter()
            .filter(|v| tags::VolumeRole::of(v) == Some(tags::VolumeRole::Root))
            .filter(|v| v.state == crate::model::VolumeState::Available)
            .max_by_key(|v| v.create_time);
        if let Some(owner) = root.and_then(|v| v.tags.get(tags::INSTANCE)) {
            return Ok(owner.clone());
        }
        let images = self.ec2.own_images().await?;
        newest_available(&images, &self.config.node_tag, node)
            .and_then(|i| i.tags.get(tags::SOURCE_INSTANCE).cloned())
            .ok_or(failure::Failure::NoImage { node: node.to_string() })
    }

    /// An instance EC2 ended during its launch never held the node: its
    /// relaunch is the one of the instance it was to replace, which may be
    /// going on with another pool already (EC2 notifies its termination
    /// too). Any other instance is relaunched as it is.
    async fn launched_by(&mut self, dead: Dead) -> Result<Dead, failure::Failure> {
        let Some(ended) = dead.instance.as_ref().filter(|i| i.launch_failure().is_some()) else { return Ok(dead) };
        let Some(predecessor) = ended.tags.get(tags::REPLACES).cloned() else { return Ok(dead) };
        let ended = ended.clone();
        self.terminated_at_launch(&ended);
        self.step(
            "launch-ended",
            format!("{} was ended at its launch: the relaunch of {predecessor} goes on", ended.id),
        );
        let instance = self.ec2.instance(&predecessor).await?;
        self.report.old = Some(OldInstance {
            id: predecessor.clone(),
            private_ip: instance.as_ref().and_then(|i| i.private_ip.clone()),
        });
        Ok(Dead::new(dead.node, predecessor, instance))
    }

    /// Follows the node's generations from `dead`: a replacement that is
    /// alive is resumed; one that was lost too is relaunched instead.
    async fn newest_generation(&mut self, mut dead: Dead) -> Result<(Dead, Option<Instance>), failure::Failure> {
        for _ in 0..8 {
            let tagged = self.ec2.instances_with_tag(tags::REPLACES).await?;
            let mut next: Vec<Instance> =
                tagged.into_iter().filter(|i| i.tags.get(tags::REPLACES) == Some(&dead.id)).collect();
            // EC2 ended these at their launch: their pools are dead.
            for ended in next.iter().filter(|i| i.launch_failure().is_some()) {
                self.terminated_at_launch(ended);
            }
            if let Some(alive) = next.iter().find(|i| !i.state.is_gone()) {
                return Ok((dead, Some(alive.clone())));
            }
            next.sort_by_key(|i| i.launch_time);
            let Some(lost) = next.pop() else { return Ok((dead, None)) };
            self.step(
                "replacement-lost",
                format!("{} replaced {} and is {}: relaunching it", lost.id, dead.id, lost.state),
            );
            self.report.old = Some(OldInstance { id: lost.id.clone(), private_ip: None });
            let mut lineage = vec![dead.id];
            lineage.extend(dead.lineage);
            dead = Dead { node: dead.node, id: lost.id.clone(), instance: Some(lost), gone_at: None, lineage };
        }
        Ok((dead, None))
    }

    /// A replacement exists already: carry on with it, with the state its
    /// launch recorded.
    fn resume(&mut self, existing: Instance) -> String {
        self.step("replacement-found", format!("{} exists already: resuming", existing.id));
        self.report.outcome = Outcome::Resumed;
        self.report.state = source::recorded_state(&existing);
        existing.id
    }

    /// Starts a final image of the old instance while EC2 still lets us:
    /// snapshots are point-in-time at the call, so it completes after the
    /// termination. The fallback when the old disks cannot be used.
    async fn final_backup(&mut self, dead: &Dead) {
        let Some(instance) = &dead.instance else { return };
        if self.config.final_backup && instance.state.can_be_imaged() {
            self.backup(instance, &dead.node, dead.final_image_name(), "final").await;
        }
    }

    /// An early backup before a rebalance or a spot stop; never a relaunch.
    async fn early_backup(
        &mut self,
        instance_id: &str,
        time: DateTime<Utc>,
        stop: Option<String>,
    ) -> Result<(), failure::Failure> {
        let Some(dead) = self.identify(instance_id).await? else { return Ok(()) };
        let Some(instance) = dead.instance.as_ref() else {
            self.ignore(format!("EC2 no longer describes {instance_id}: too late for an early backup"));
            return Ok(());
        };
        if let Some(action) = &stop {
            self.report.outcome = Outcome::Stopping;
            self.report.reason = Some(format!(
                "EC2 is {action} instance {instance_id} and restarts it itself with its volumes and interface: not a relaunch"
            ));
            if !self.config.final_backup {
                return Ok(());
            }
        }
        if !instance.state.can_be_imaged() {
            self.ignore(format!("instance {} is {}: too late for an early backup", dead.id, instance.state));
            return Ok(());
        }
        let name = dead.node.image(&format!("early-{}", time.format("%Y%m%d-%H%M")));
        let instance = instance.clone();
        self.backup(&instance, &dead.node, name, "early").await;
        if stop.is_none() {
            self.report.outcome = Outcome::BackupTaken;
        }
        Ok(())
    }

    async fn backup(&mut self, instance: &Instance, node: &NodeName, name: String, kind: &str) {
        let spec = ImageSpec {
            instance_id: instance.id.clone(),
            description: format!("lifeboat {kind} backup of node {node} ({})", instance.id),
            tags: tags::backup(&self.config.node_tag, node.as_str(), &instance.id, &name, kind),
            image_tags: LaunchSpec::from_instance(instance).map(|s| s.to_tags()).unwrap_or_default(),
            name,
        };
        let result = backup::create(self.ec2, node.as_str(), &instance.id, &spec).await;
        self.step("backup", format!("{:?} {}", result.outcome, result.image_id.as_deref().unwrap_or("")));
        self.report.backup = Some(result);
    }

    /// Waits for the old instance to be terminated: its volumes and
    /// interface are free only then.
    async fn wait_terminated(&mut self, mut dead: Dead, time: DateTime<Utc>) -> Result<Dead, failure::Failure> {
        let state = dead.instance.as_ref().map(|i| i.state);
        if matches!(state, Some(s) if s != InstanceState::Terminated) {
            let id = dead.id.clone();
            self.wait_gone("the old instance to terminate", &id).await?;
            dead.gone_at = Some(self.wall_now());
            self.step("old-terminated", format!("{id} is terminated"));
        } else {
            // Terminated before this invocation: the event's time is the
            // closest we know.
            dead.gone_at = Some(time.min(self.now));
        }
        Ok(dead)
    }
}
