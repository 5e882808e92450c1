//! interruption-handler: event → plan → effects → report.
//!
//! On a spot interruption (or the node's instance shutting down without a
//! warning, or a manual restore) the node is relaunched from its newest
//! available image on the same private IP, exactly once, then checked over
//! SSM Run Command. Every step can be repeated: a retried or duplicated
//! invocation finds the replacement by its `lifeboat:replaces` tag, and
//! RunInstances' ClientToken makes two concurrent launches one.

use crate::backup::{self, check_node_name};
use crate::config::{Capacity, Config};
use crate::event::{EventError, json_kind};
use crate::model::{CloudError, Image, ImageState, Instance, InstanceState, Tags, tag};
use crate::ports::{CommandState, Ec2, ImageSpec, LaunchRequest, Market, Network, Notifier, Ssm};
use crate::spec::LaunchSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// On a replacement: the instance it replaces.
pub const REPLACES: &str = "lifeboat:replaces";
/// On a replacement: the image it was launched from.
pub const RESTORED_FROM: &str = "lifeboat:restored-from";
/// What the replacement runs over SSM once it is online: the on-node repair
/// (see the script's header for what it does and its result line).
pub const REPAIR_SCRIPT: &str = include_str!("../scripts/lifeboat-repair.sh");
/// What a restore drill runs on its clone after the repair.
pub const HEALTH_SCRIPT: &str = include_str!("../scripts/lifeboat-health.sh");
/// On a restore drill's clone: the node it is a drill of. Never the node tag,
/// so a clone is never backed up, pruned as a node or taken for a replacement.
pub const DRILL_OF: &str = "lifeboat:drill-of";

/// RunInstances errors that mean "not this type or market now": the launch
/// moves on to the next choice instead of failing.
pub const CAPACITY_ERRORS: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "Unsupported",
    "InsufficientFreeAddressesInSubnet",
    "VcpuLimitExceeded",
    "InstanceLimitExceeded",
];

/// Time the handler keeps for itself before the Lambda deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

// --- Events -------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Relaunch the node this instance was.
    Relaunch { instance_id: String, trigger: String },
    /// Take an early backup of the node; never relaunch.
    Rebalance { instance_id: String },
    /// Relaunch a node whose instance is gone.
    Restore { node: String },
    /// Launch a clone of the node from its newest image on a new IP, repair
    /// and check it in quarantine, then terminate it unless `keep`.
    Drill { node: String, keep: bool },
    /// Acknowledged, nothing to do.
    Ignore { reason: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Ec2Detail {
    instance_id: String,
    state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manual {
    action: String,
    node: String,
    keep: Option<bool>,
}

/// Parses what interruption-handler was invoked with; the time is the event's
/// (or `now` for manual requests).
pub fn parse_event(event: &Value, now: DateTime<Utc>) -> Result<(Request, DateTime<Utc>), EventError> {
    let Some(object) = event.as_object() else {
        return Err(EventError::NotAnObject(json_kind(event)));
    };
    if !object.contains_key("detail-type") {
        let manual: Manual = serde_json::from_value(event.clone()).map_err(|e| EventError::Manual {
            message: e.to_string(),
            expected: "{\"action\": \"restore\" or \"test-restore\", \"node\": \"<name>\"}",
        })?;
        check_node_name(&manual.node).map_err(|reason| EventError::NodeName { node: manual.node.clone(), reason })?;
        return match (manual.action.as_str(), manual.keep) {
            ("restore", None) => Ok((Request::Restore { node: manual.node }, now)),
            ("restore", Some(_)) => Err(EventError::Detail("\"keep\" goes with \"test-restore\" only".into())),
            ("test-restore", keep) => Ok((Request::Drill { node: manual.node, keep: keep.unwrap_or(false) }, now)),
            (other, _) => {
                Err(EventError::Detail(format!("unknown action {other:?} (expected \"restore\" or \"test-restore\")")))
            }
        };
    }
    let envelope: aws_lambda_events::eventbridge::EventBridgeEvent<Value> =
        serde_json::from_value(event.clone()).map_err(|e| EventError::Envelope(e.to_string()))?;
    let time = envelope.time.ok_or(EventError::NoTime)?;
    let wrong = || EventError::WrongEventType {
        function: "interruption-handler",
        accepted: "EC2 Spot Instance Interruption Warning, EC2 Instance State-change Notification and EC2 Instance Rebalance Recommendation from aws.ec2",
        detail_type: envelope.detail_type.clone(),
        event_source: envelope.source.clone(),
    };
    if envelope.source != "aws.ec2" {
        return Err(wrong());
    }
    let detail: Ec2Detail =
        serde_json::from_value(envelope.detail.clone()).map_err(|e| EventError::Detail(format!("detail: {e}")))?;
    if !detail.instance_id.starts_with("i-") {
        return Err(EventError::Detail(format!("detail.instance-id {:?} is not an instance id", detail.instance_id)));
    }
    let instance_id = detail.instance_id;
    let request = match envelope.detail_type.as_str() {
        "EC2 Spot Instance Interruption Warning" => {
            Request::Relaunch { instance_id, trigger: "interruption-warning".into() }
        }
        "EC2 Instance Rebalance Recommendation" => Request::Rebalance { instance_id },
        "EC2 Instance State-change Notification" => match detail.state.as_deref() {
            Some(state @ ("shutting-down" | "terminated")) => {
                Request::Relaunch { instance_id, trigger: format!("state-change:{state}") }
            }
            Some(state) => Request::Ignore { reason: format!("instance {instance_id} is {state}: nothing to do") },
            None => return Err(EventError::Detail("detail.state is missing".into())),
        },
        _ => return Err(wrong()),
    };
    Ok((request, time))
}

// --- Decisions ----------------------------------------------------------------

/// The (instance type, market) pairs to try, in order.
pub fn launch_plan(old_type: &str, config: &Config) -> Vec<(String, Market)> {
    let types: Vec<String> =
        if config.instance_types.is_empty() { vec![old_type.to_string()] } else { config.instance_types.clone() };
    let markets: &[Market] = match config.capacity {
        Capacity::SpotThenOnDemand => &[Market::Spot, Market::OnDemand],
        Capacity::Spot => &[Market::Spot],
        Capacity::OnDemand => &[Market::OnDemand],
    };
    markets.iter().flat_map(|m| types.iter().map(move |t| (t.clone(), *m))).collect()
}

/// The newest `available` image of the node.
pub fn newest_available<'a>(images: &'a [Image], node_tag: &str, node: &str) -> Option<&'a Image> {
    images
        .iter()
        .filter(|i| i.state == ImageState::Available && i.tags.get(node_tag).map(String::as_str) == Some(node))
        .max_by(|a, b| a.creation_date.cmp(&b.creation_date).then(b.id.cmp(&a.id)))
}

/// The replacement's tags: the old instance's own (not `aws:*`, not an older
/// generation's lifeboat markers) plus what it replaces and comes from.
pub fn replacement_tags(old: Option<&Instance>, node_tag: &str, node: &str, image_id: &str) -> Tags {
    let mut tags: Tags = old
        .map(|o| {
            o.tags
                .iter()
                .filter(|(k, _)| !k.starts_with("aws:") && *k != REPLACES && *k != RESTORED_FROM)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    tags.insert(node_tag.to_string(), node.to_string());
    tags.entry(tag::NAME.to_string()).or_insert_with(|| node.to_string());
    if let Some(old) = old {
        tags.insert(REPLACES.to_string(), old.id.clone());
    }
    tags.insert(RESTORED_FROM.to_string(), image_id.to_string());
    tags
}

/// Unique per launch attempt of one relaunch, the same across retries of it.
pub fn client_token(origin: &str, subnet_id: &str, attempt: usize) -> String {
    let token = format!("{origin}-{subnet_id}-{attempt}");
    token.chars().take(64).collect()
}

// --- Report -------------------------------------------------------------------

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
    /// The repair script's result line, parsed.
    pub result: Option<Value>,
}

/// Whether the repair left the node healthy, from its command's state. The
/// script's last JSON line decides (`ok` or `repaired`: healthy, `failed`:
/// not), since SSM calls every non-zero exit `Failed`, the "repaired" exit
/// code 3 included. Without a result line, SSM's own status decides.
pub fn repair_verdict(state: &CommandState) -> (Option<Value>, Result<(), String>) {
    let output = match state {
        CommandState::InProgress => return (None, Err("the repair command has not finished".into())),
        CommandState::Success { output } | CommandState::Failed { output, .. } => output,
    };
    let line = output.lines().rev().find_map(|l| serde_json::from_str::<Value>(l.trim()).ok().filter(Value::is_object));
    let verdict = match (line.as_ref().and_then(|l| l["result"].as_str()), state) {
        (Some("ok" | "repaired"), _) => Ok(()),
        (Some(result), _) => Err(format!(
            "the repair reported {result} at step {}: {}",
            line.as_ref().and_then(|l| l["step"].as_str()).unwrap_or("?"),
            line.as_ref().and_then(|l| l["message"].as_str()).unwrap_or("")
        )),
        (None, CommandState::Success { .. }) => Ok(()),
        (None, CommandState::Failed { ssm_status, exit_code, .. }) => {
            Err(format!("the repair command ended {ssm_status} (exit {exit_code}) without a result line"))
        }
        (None, CommandState::InProgress) => unreachable!("handled above"),
    };
    (line, verdict)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelaunchReport {
    pub trigger: String,
    pub time: DateTime<Utc>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub node: Option<String>,
    pub old_instance: Option<String>,
    pub replacement: Option<String>,
    pub image_id: Option<String>,
    pub old_private_ip: Option<String>,
    pub private_ip: Option<String>,
    pub same_ip: Option<bool>,
    pub network: Option<Network>,
    pub instance_type: Option<String>,
    pub market: Option<Market>,
    pub launch_attempts: Vec<Attempt>,
    /// The final (or, on a rebalance recommendation, early) backup.
    pub backup: Option<backup::NodeResult>,
    pub command: Option<CommandReport>,
    /// `sent`, or why the notification could not be (none when there was
    /// nothing to tell, or no topic).
    pub notification: Option<String>,
    pub timeline: Vec<Step>,
}

impl RelaunchReport {
    /// The notification's subject, for the outcomes operators hear about.
    pub fn subject(&self) -> Option<String> {
        let node = self.node.as_deref().unwrap_or("?");
        let subject = match self.outcome {
            Outcome::Relaunched | Outcome::Resumed => format!("lifeboat: {node} relaunched"),
            Outcome::DrillPassed => format!("lifeboat: restore drill of {node} passed"),
            Outcome::Failed if self.trigger == "test-restore" => format!("lifeboat: restore drill of {node} FAILED"),
            Outcome::Failed => format!("lifeboat: relaunch of {node} FAILED"),
            Outcome::AlreadyDone | Outcome::BackupTaken | Outcome::Ignored => return None,
        };
        // SNS subjects hold at most 100 characters.
        Some(subject.chars().take(100).collect())
    }
}

impl RelaunchReport {
    /// An EMF line for a relaunch that happened (`Relaunched`) or failed
    /// (`RelaunchFailed`, which an alarm watches).
    pub fn metrics(&self, at: DateTime<Utc>) -> Vec<String> {
        let metric = match self.outcome {
            Outcome::Relaunched => "Relaunched",
            Outcome::Failed => "RelaunchFailed",
            _ => return Vec::new(),
        };
        vec![crate::metrics::count(metric, self.node.as_deref().unwrap_or("unknown"), at)]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelaunchError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("relaunch of node {} failed: {}", .0.node.as_deref().unwrap_or("?"), .0.reason.as_deref().unwrap_or("?"))]
    Failed(Box<RelaunchReport>),
}

impl RelaunchError {
    /// The report of an invocation that ran (and failed).
    pub fn report(&self) -> Option<&RelaunchReport> {
        match self {
            RelaunchError::Failed(report) => Some(report),
            RelaunchError::Event(_) => None,
        }
    }
}

// --- Flow ---------------------------------------------------------------------

/// How long each wait may take, and how often it polls (with backoff).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub terminate: Duration,
    pub interface: Duration,
    pub running: Duration,
    pub online: Duration,
    pub command: Duration,
    pub first_poll: Duration,
    pub max_poll: Duration,
    /// The repair command's own timeout on the node.
    pub command_timeout_seconds: i32,
}

impl Default for Timing {
    /// Fits a 15-minute Lambda with the warning's two minutes to spare.
    fn default() -> Self {
        Timing {
            terminate: Duration::from_secs(240),
            interface: Duration::from_secs(90),
            running: Duration::from_secs(180),
            online: Duration::from_secs(300),
            command: Duration::from_secs(300),
            first_poll: Duration::from_secs(2),
            max_poll: Duration::from_secs(15),
            command_timeout_seconds: 600,
        }
    }
}

/// Polls `probe` until it yields a value, with backoff, for at most `limit`
/// (and never past `deadline`).
async fn wait_for<T, F, Fut>(
    what: &str,
    limit: Duration,
    timing: &Timing,
    deadline: Option<Instant>,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, CloudError>>,
{
    let start = Instant::now();
    let limit = match deadline {
        Some(deadline) => limit.min(deadline.saturating_duration_since(start).saturating_sub(DEADLINE_MARGIN)),
        None => limit,
    };
    let mut delay = timing.first_poll;
    loop {
        if let Some(value) = probe().await.map_err(|e| format!("waiting for {what}: {e}"))? {
            return Ok(value);
        }
        let elapsed = start.elapsed();
        if elapsed >= limit {
            return Err(format!("{what}: not after {} s", elapsed.as_secs()));
        }
        sleep(delay.min(limit - elapsed)).await;
        delay = (delay * 3 / 2).min(timing.max_poll);
    }
}

struct Flow<'a, E, S> {
    ec2: &'a E,
    ssm: &'a S,
    config: &'a Config,
    timing: Timing,
    deadline: Option<Instant>,
    started: Instant,
    report: RelaunchReport,
}

/// The cloud the flow works in.
pub struct Cloud<'a, E, S, N> {
    pub ec2: &'a E,
    pub ssm: &'a S,
    pub notifier: &'a N,
}

/// Parses the event and runs the flow. `deadline` is the Lambda's: waits stop
/// short of it, and the retry resumes.
pub async fn handle<E: Ec2, S: Ssm, N: Notifier>(
    cloud: Cloud<'_, E, S, N>,
    config: &Config,
    timing: Timing,
    event: &Value,
    now: DateTime<Utc>,
    deadline: Option<Instant>,
) -> Result<RelaunchReport, RelaunchError> {
    let (request, time) = parse_event(event, now)?;
    let trigger = match &request {
        Request::Relaunch { trigger, .. } => trigger.clone(),
        Request::Rebalance { .. } => "rebalance-recommendation".into(),
        Request::Restore { .. } => "restore".into(),
        Request::Drill { .. } => "test-restore".into(),
        Request::Ignore { .. } => "state-change".into(),
    };
    let Cloud { ec2, ssm, notifier } = cloud;
    let mut flow = Flow {
        ec2,
        ssm,
        config,
        timing,
        deadline,
        started: Instant::now(),
        report: RelaunchReport {
            trigger,
            time,
            outcome: Outcome::Relaunched,
            reason: None,
            node: None,
            old_instance: None,
            replacement: None,
            image_id: None,
            old_private_ip: None,
            private_ip: None,
            same_ip: None,
            network: None,
            instance_type: None,
            market: None,
            launch_attempts: Vec::new(),
            backup: None,
            command: None,
            notification: None,
            timeline: Vec::new(),
        },
    };
    let result = flow.run(request, time).await;
    if let Err(reason) = &result {
        tracing::error!(node = ?flow.report.node, reason = %reason, "relaunch failed");
        flow.step("failed", reason.clone());
        flow.report.outcome = Outcome::Failed;
        flow.report.reason = Some(reason.clone());
    }
    let mut report = flow.report;
    notify(notifier, config, &mut report).await;
    match result {
        Ok(()) => Ok(report),
        Err(_) => Err(RelaunchError::Failed(Box::new(report))),
    }
}

/// Publishes the report to `LIFEBOAT_NOTIFY_TOPIC_ARN` when its outcome is
/// news. A notification that fails is recorded in the report, not retried:
/// the outcome stands, and the logs and alarms carry it too.
async fn notify<N: Notifier>(notifier: &N, config: &Config, report: &mut RelaunchReport) {
    let (Some(topic), Some(subject)) = (&config.notify_topic_arn, report.subject()) else { return };
    let message = serde_json::to_string_pretty(&*report).unwrap_or_default();
    report.notification = Some(match notifier.publish(topic, &subject, &message).await {
        Ok(()) => "sent".to_string(),
        Err(e) => {
            tracing::error!(error = %e, "notification failed");
            format!("failed: {e}")
        }
    });
}

impl<E: Ec2, S: Ssm> Flow<'_, E, S> {
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

    async fn run(&mut self, request: Request, time: DateTime<Utc>) -> Result<(), String> {
        let node_tag = self.config.node_tag.clone();
        let (old, node, rebalance) = match request {
            Request::Ignore { reason } => {
                self.ignore(reason);
                return Ok(());
            }
            Request::Relaunch { instance_id, .. } => match self.node_of(&instance_id).await? {
                Some((old, node)) => (Some(old), node, false),
                None => return Ok(()),
            },
            Request::Rebalance { instance_id } => match self.node_of(&instance_id).await? {
                Some((old, node)) => (Some(old), node, true),
                None => return Ok(()),
            },
            Request::Restore { node } => (self.restorable(&node).await?, node, false),
            Request::Drill { node, keep } => {
                self.report.node = Some(node.clone());
                return self.drill(&node, keep, time).await;
            }
        };
        self.report.node = Some(node.clone());
        self.report.old_instance = old.as_ref().map(|o| o.id.clone());
        self.report.old_private_ip = old.as_ref().and_then(|o| o.private_ip.clone());

        if rebalance {
            let old = old.expect("a rebalance names its instance");
            if !matches!(old.state, InstanceState::Running | InstanceState::Stopping | InstanceState::Stopped) {
                self.ignore(format!("instance {} is {}: too late for an early backup", old.id, old.state));
                return Ok(());
            }
            let name = format!("{node}-rebalance-{}", time.format("%Y%m%d-%H%M"));
            self.backup(&old, &node, name, "rebalance").await;
            self.report.outcome = Outcome::BackupTaken;
            return Ok(());
        }

        let replacement = match &old {
            Some(old) => self.find_replacement(&old.id).await?,
            None => None,
        };
        let replacement = match replacement {
            Some(existing) => {
                self.step("replacement-found", format!("{} exists already: resuming", existing.id));
                self.report.outcome = Outcome::Resumed;
                self.report.image_id = existing.tags.get(RESTORED_FROM).cloned();
                existing.id
            }
            None => self.launch(old.as_ref(), &node, &node_tag).await?,
        };
        self.report.replacement = Some(replacement.clone());

        let running = self.wait_managed(&replacement).await?;
        self.record_running(&running);

        self.repair(&replacement, &node).await
    }

    /// The instance and its node name, or `None` (and the report says why)
    /// when lifeboat does not manage it.
    async fn node_of(&mut self, instance_id: &str) -> Result<Option<(Instance, String)>, String> {
        let Some(instance) = self.ec2.instance(instance_id).await.map_err(|e| e.to_string())? else {
            self.ignore(format!("instance {instance_id} is unknown"));
            return Ok(None);
        };
        let Some(node) = instance.tags.get(&self.config.node_tag).cloned() else {
            self.ignore(format!("instance {instance_id} has no {} tag: not a node", self.config.node_tag));
            return Ok(None);
        };
        Ok(Some((instance, node)))
    }

    /// For a manual restore: the node's last instance, if EC2 still knows
    /// it. Refuses while an instance of the node is alive (a relaunch would
    /// fight it for its IP).
    async fn restorable(&mut self, node: &str) -> Result<Option<Instance>, String> {
        let tagged = self.ec2.instances_with_tag(&self.config.node_tag).await.map_err(|e| e.to_string())?;
        let mut mine: Vec<Instance> = tagged
            .into_iter()
            .filter(|i| i.tags.get(&self.config.node_tag).map(String::as_str) == Some(node))
            .collect();
        if let Some(alive) = mine.iter().find(|i| !matches!(i.state, InstanceState::Terminated)) {
            return Err(format!(
                "node {node} still has instance {} ({}): terminate it first, a restore would fight it for its IP",
                alive.id, alive.state
            ));
        }
        mine.sort_by_key(|i| i.launch_time);
        Ok(mine.pop())
    }

    async fn find_replacement(&self, old_id: &str) -> Result<Option<Instance>, String> {
        let tagged = self.ec2.instances_with_tag(REPLACES).await.map_err(|e| e.to_string())?;
        Ok(tagged.into_iter().find(|i| {
            i.tags.get(REPLACES).map(String::as_str) == Some(old_id)
                && !matches!(i.state, InstanceState::ShuttingDown | InstanceState::Terminated)
        }))
    }

    async fn backup(&mut self, old: &Instance, node: &str, name: String, kind: &str) {
        if let Err(reason) = check_node_name(&name) {
            self.step("backup", format!("skipped: image name {name} {reason}"));
            return;
        }
        let mut tags = backup::backup_tags(&self.config.node_tag, node, &old.id, &name);
        tags.insert(tag::KIND.to_string(), kind.to_string());
        let spec = ImageSpec {
            instance_id: old.id.clone(),
            description: format!("lifeboat {kind} backup of node {node} ({})", old.id),
            tags,
            image_tags: LaunchSpec::from_instance(old).map(|s| s.to_tags()).unwrap_or_default(),
            name,
        };
        let result = backup::create(self.ec2, node, &old.id, &spec).await;
        self.step("backup", format!("{:?} {}", result.outcome, result.image_id.as_deref().unwrap_or("")));
        self.report.backup = Some(result);
    }

    /// Final backup, wait for the old instance to go, pick the image, launch.
    async fn launch(&mut self, old: Option<&Instance>, node: &str, node_tag: &str) -> Result<String, String> {
        if let Some(old) = old {
            if self.config.final_backup
                && matches!(old.state, InstanceState::Running | InstanceState::Stopping | InstanceState::Stopped)
            {
                self.backup(old, node, format!("{node}-final-{}", old.id), "final").await;
            }
            if old.state != InstanceState::Terminated {
                let id = old.id.clone();
                wait_for(
                    "the old instance to terminate",
                    self.timing.terminate,
                    &self.timing,
                    self.deadline,
                    || async {
                        Ok(match self.ec2.instance(&id).await? {
                            Some(i) if i.state != InstanceState::Terminated => None,
                            _ => Some(()),
                        })
                    },
                )
                .await?;
                self.step("old-terminated", format!("{id} is terminated"));
            }
        }

        let images = self.ec2.own_images().await.map_err(|e| e.to_string())?;
        let image = newest_available(&images, node_tag, node)
            .ok_or_else(|| format!("node {node} has no available backup image to relaunch from"))?
            .clone();
        self.report.image_id = Some(image.id.clone());
        self.step("image", format!("{} ({})", image.id, image.name));

        let recorded = LaunchSpec::from_tags(&image.tags);
        let spec = match old.and_then(LaunchSpec::from_instance) {
            Some(seen) => seen.completed_by(recorded),
            None => recorded.ok_or_else(|| {
                format!("no launch spec for node {node}: the old instance is gone and image {} records none", image.id)
            })?,
        };
        if self.report.old_private_ip.is_none() {
            self.report.old_private_ip = spec.private_ip.clone();
        }

        let network = match &spec.interface_id {
            Some(eni) => {
                let eni = eni.clone();
                let old_id = old.map(|o| o.id.clone()).unwrap_or_default();
                let free = wait_for(
                    "the kept interface to be free",
                    self.timing.interface,
                    &self.timing,
                    self.deadline,
                    || async {
                        Ok(match self.ec2.network_interface(&eni).await? {
                            None => Some(Free::Gone),
                            Some(i) if i.status == "available" => Some(Free::Available),
                            // Still on the old instance, or already on the replacement
                            // a concurrent invocation launched.
                            Some(_) => self
                                .find_replacement(&old_id)
                                .await
                                .map_err(|e| CloudError::new("DescribeInstances", None, e))?
                                .map(|r| Free::TakenBy(r.id)),
                        })
                    },
                )
                .await?;
                match free {
                    Free::Available => Network::Interface(eni),
                    Free::Gone => {
                        self.step("interface", format!("{eni} is gone: a new interface with the old address"));
                        address(&spec)
                    }
                    Free::TakenBy(replacement) => {
                        self.step("replacement-found", format!("{replacement} took {eni}: resuming"));
                        self.report.outcome = Outcome::Resumed;
                        return Ok(replacement);
                    }
                }
            }
            None => address(&spec),
        };
        self.report.network = Some(network.clone());

        let origin = old.map(|o| o.id.clone()).unwrap_or_else(|| image.id.clone());
        let tags = replacement_tags(old, node_tag, node, &image.id);
        self.launch_instance(&spec, &image.id, network, tags, &origin).await
    }

    /// RunInstances through the capacity plan: the next type or market on a
    /// capacity error, a failure on anything else.
    async fn launch_instance(
        &mut self,
        spec: &LaunchSpec,
        image_id: &str,
        network: Network,
        tags: Tags,
        origin: &str,
    ) -> Result<String, String> {
        let node = self.report.node.clone().unwrap_or_default();
        for (attempt, (instance_type, market)) in launch_plan(&spec.instance_type, self.config).into_iter().enumerate()
        {
            let request = LaunchRequest {
                client_token: client_token(origin, &spec.subnet_id, attempt),
                image_id: image_id.to_string(),
                instance_type: instance_type.clone(),
                market,
                network: network.clone(),
                key_name: spec.key_name.clone(),
                instance_profile_arn: spec.instance_profile_arn.clone(),
                http_tokens: spec.http_tokens.clone(),
                http_put_response_hop_limit: spec.http_put_response_hop_limit,
                tags: tags.clone(),
            };
            match self.ec2.run_instance(&request).await {
                Ok(instance) => {
                    self.step("launched", format!("{} as {instance_type} {market:?}", instance.id));
                    return Ok(instance.id);
                }
                Err(e) if CAPACITY_ERRORS.iter().any(|code| e.has_code(code)) => {
                    self.step("no-capacity", format!("{instance_type} {market:?}: {e}"));
                    self.report.launch_attempts.push(Attempt { instance_type, market, error: e.to_string() });
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("no capacity for node {node} in any allowed type and market ({})", self.config.capacity))
    }

    fn record_running(&mut self, running: &Instance) {
        self.report.private_ip = running.private_ip.clone();
        self.report.instance_type = Some(running.instance_type.clone());
        self.report.market = Some(if running.spot { Market::Spot } else { Market::OnDemand });
        self.report.same_ip = match (&self.report.old_private_ip, &running.private_ip) {
            (Some(old), Some(new)) => Some(old == new),
            _ => None,
        };
    }

    /// Waits for the instance to run, then for its SSM agent.
    async fn wait_managed(&mut self, instance_id: &str) -> Result<Instance, String> {
        let running = wait_for("the instance to run", self.timing.running, &self.timing, self.deadline, || async {
            match self.ec2.instance(instance_id).await? {
                Some(i) if i.state == InstanceState::Running => Ok(Some(Ok(i))),
                Some(i) if matches!(i.state, InstanceState::ShuttingDown | InstanceState::Terminated) => {
                    Ok(Some(Err(format!("instance {} is {}", i.id, i.state))))
                }
                _ => Ok(None),
            }
        })
        .await??;
        self.step("running", format!("{} running with {}", running.id, running.private_ip.as_deref().unwrap_or("?")));
        wait_for("the SSM agent to come online", self.timing.online, &self.timing, self.deadline, || async {
            Ok(self.ssm.is_online(instance_id).await?.then_some(()))
        })
        .await?;
        self.step("ssm-online", format!("{instance_id} is a managed node"));
        Ok(running)
    }

    /// Runs a script over SSM and waits for its result line.
    async fn run_script(
        &mut self,
        instance_id: &str,
        comment: &str,
        script: &str,
        args: &[String],
    ) -> Result<(String, CommandState), String> {
        let id = self
            .ssm
            .send_script(instance_id, comment, script, args, self.timing.command_timeout_seconds)
            .await
            .map_err(|e| e.to_string())?;
        self.step("command-sent", format!("{comment}: {id}"));
        let state = self.command_result(&id, instance_id).await?;
        Ok((id, state))
    }

    async fn command_result(&self, command_id: &str, instance_id: &str) -> Result<CommandState, String> {
        wait_for("the command to finish", self.timing.command, &self.timing, self.deadline, || async {
            match self.ssm.command_state(command_id, instance_id).await {
                Ok(CommandState::InProgress) => Ok(None),
                // Visible a moment after SendCommand returns.
                Err(e) if e.has_code("InvocationDoesNotExist") => Ok(None),
                other => other.map(Some),
            }
        })
        .await
    }

    /// A restore drill: a clone of the node from its newest image, on a new
    /// IP, repaired in quarantine and checked; terminated unless `keep`,
    /// whatever happened.
    async fn drill(&mut self, node: &str, keep: bool, time: DateTime<Utc>) -> Result<(), String> {
        let node_tag = self.config.node_tag.clone();
        let tagged = self.ec2.instances_with_tag(&node_tag).await.map_err(|e| e.to_string())?;
        let live = tagged
            .into_iter()
            .filter(|i| i.tags.get(&node_tag).map(String::as_str) == Some(node) && i.state == InstanceState::Running)
            .max_by_key(|i| i.launch_time);
        self.report.old_instance = live.as_ref().map(|i| i.id.clone());
        self.report.old_private_ip = live.as_ref().and_then(|i| i.private_ip.clone());
        let images = self.ec2.own_images().await.map_err(|e| e.to_string())?;
        let image = newest_available(&images, &node_tag, node)
            .ok_or_else(|| format!("node {node} has no available backup image to drill with"))?
            .clone();
        self.report.image_id = Some(image.id.clone());
        self.step("image", format!("{} ({})", image.id, image.name));
        let spec = live
            .as_ref()
            .and_then(LaunchSpec::from_instance)
            .or_else(|| LaunchSpec::from_tags(&image.tags))
            .ok_or_else(|| {
                format!("no launch spec for node {node}: no running instance and image {} records none", image.id)
            })?;
        // A new IP in the node's subnet: the real node keeps its own.
        let network = Network::Address {
            subnet_id: spec.subnet_id.clone(),
            private_ip: None,
            security_group_ids: match &self.config.drill_security_group {
                Some(group) => vec![group.clone()],
                None => spec.security_group_ids.clone(),
            },
        };
        self.report.network = Some(network.clone());
        let tags = Tags::from([
            (tag::NAME.to_string(), format!("{node}-drill")),
            (DRILL_OF.to_string(), node.to_string()),
            (RESTORED_FROM.to_string(), image.id.clone()),
        ]);
        let origin = format!("drill-{}-{}", image.id, time.format("%Y%m%d%H%M"));
        let clone = self.launch_instance(&spec, &image.id, network, tags, &origin).await?;
        self.report.replacement = Some(clone.clone());

        let checked = self.check_clone(&clone, node).await;
        if keep {
            self.step("kept", format!("{clone} left running (keep)"));
        } else {
            match self.ec2.terminate_instance(&clone).await {
                Ok(()) => self.step("cleaned-up", format!("{clone} terminated")),
                Err(e) => {
                    let cleanup = format!("the clone {clone} could not be terminated: {e}");
                    return Err(checked.err().map(|c| format!("{c}; {cleanup}")).unwrap_or(cleanup));
                }
            }
        }
        checked?;
        self.report.outcome = Outcome::DrillPassed;
        Ok(())
    }

    async fn check_clone(&mut self, clone: &str, node: &str) -> Result<(), String> {
        let running = self.wait_managed(clone).await?;
        self.record_running(&running);
        let (id, state) = self
            .run_script(clone, &format!("lifeboat drill repair of {node}"), REPAIR_SCRIPT, &["--quarantine".into()])
            .await?;
        let (result, verdict) = repair_verdict(&state);
        self.report.command = Some(CommandReport { command_id: id, state, result });
        verdict?;
        self.step("repaired", "the clone was repaired in quarantine");
        let (_, health) = self
            .run_script(clone, &format!("lifeboat drill health of {node}"), HEALTH_SCRIPT, &[node.to_string()])
            .await?;
        repair_verdict(&health).1.map_err(|e| format!("the clone is not healthy: {e}"))?;
        self.step("healthy", "apiserver ready, etcd healthy, node present");
        Ok(())
    }

    /// Sends the node script (unless an earlier invocation did) and waits
    /// for its result.
    async fn repair(&mut self, replacement: &str, node: &str) -> Result<(), String> {
        let comment = format!("lifeboat repair of {node}");
        let previous = self.ssm.last_command(replacement, &comment).await.map_err(|e| e.to_string())?;
        let previous = match previous {
            Some(id) => Some((self.ssm.command_state(&id, replacement).await.map_err(|e| e.to_string())?, id)),
            None => None,
        };
        let command_id = match previous {
            Some((CommandState::InProgress, id)) => id,
            Some((state, id)) if repair_verdict(&state).1.is_ok() => {
                self.step("repaired", format!("{id} succeeded before: nothing left to do"));
                self.report.outcome = Outcome::AlreadyDone;
                let result = repair_verdict(&state).0;
                self.report.command = Some(CommandReport { command_id: id, state, result });
                return Ok(());
            }
            _ => {
                let (id, state) = self.run_script(replacement, &comment, REPAIR_SCRIPT, &[]).await?;
                return self.finish_repair(id, state);
            }
        };
        let state = self.command_result(&command_id, replacement).await?;
        self.finish_repair(command_id, state)
    }

    fn finish_repair(&mut self, command_id: String, state: CommandState) -> Result<(), String> {
        let (result, verdict) = repair_verdict(&state);
        self.report.command = Some(CommandReport { command_id: command_id.clone(), state, result });
        verdict.map_err(|e| format!("{e} (command {command_id})"))?;
        self.step("repaired", format!("{command_id} succeeded"));
        Ok(())
    }
}

/// What became of the old instance's kept interface.
enum Free {
    Available,
    Gone,
    TakenBy(String),
}

fn address(spec: &LaunchSpec) -> Network {
    Network::Address {
        subnet_id: spec.subnet_id.clone(),
        private_ip: spec.private_ip.clone(),
        security_group_ids: spec.security_group_ids.clone(),
    }
}
