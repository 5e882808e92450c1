//! scheduled-backup: event → plan → effects → report.
//!
//! One AMI per node and schedule slot, named `<node>-<YYYYMMDD>-<HHMM>` after
//! the slot. The name is the idempotency key: EC2 refuses a second image of
//! the same name, so a redelivered event finds its backup already made and
//! reports it as such. Every run also prepares each node for a relaunch
//! (see [`crate::prepare`]).

use crate::answer::FunctionError;
use crate::config::Config;
pub use crate::event::{EventError, Trigger};
use crate::event::{Scheduled, parse_scheduled};
use crate::model::{CloudError, ErrorKind, ImageState, Instance, InstanceState, Volume};
use crate::node::NodeName;
use crate::ports::{Describe, ImageSpec, Imaging, Port, Preparing};
use crate::prepare::{self, Preparation, PreparePlan};
use crate::spec::LaunchSpec;
use crate::tags;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Images created at once; CreateImage is cheap to call but rate limited.
const CONCURRENCY: usize = 8;

/// What an invocation asks for, whatever shape the event had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRequest {
    /// The schedule slot the AMI names are derived from.
    pub slot: DateTime<Utc>,
    /// Only this node (manual invocations); every node when `None`.
    pub node: Option<NodeName>,
    pub dry_run: bool,
    pub trigger: Trigger,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualRequest {
    node: Option<String>,
    dry_run: Option<bool>,
}

/// Parses what scheduled-backup was invoked with. `now` is the slot of
/// invocations that carry no time of their own.
pub fn parse_event(event: &Value, now: DateTime<Utc>) -> Result<BackupRequest, EventError> {
    let scheduled: Scheduled<ManualRequest> =
        parse_scheduled(event, now, "scheduled-backup", "{\"node\": \"<name>\", \"dry_run\": true}")?;
    let ManualRequest { node, dry_run } = scheduled.request;
    let node = match node {
        Some(node) => Some(NodeName::new(&node).map_err(|reason| EventError::NodeName { node, reason })?),
        None => None,
    };
    Ok(BackupRequest { slot: scheduled.time, node, dry_run: dry_run.unwrap_or(false), trigger: scheduled.trigger })
}

/// What to do for one tagged instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBackup {
    /// The node tag's value (not always a valid node name: then skipped).
    pub node: String,
    pub instance_id: String,
    pub action: Action,
    /// Preparing the node for a relaunch, for the instance backed up.
    pub prepare: Option<PreparePlan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create(ImageSpec),
    Skip(String),
}

/// Decides which instances to back up: every instance carrying the node tag
/// (restricted to `only_node` when given) that is running or stopped, one per
/// node. When a node has several candidates (a replacement beside an old
/// instance that was stopped, say) the running one launched last is backed up
/// and the others are skipped with the reason. `volumes` are the tagged
/// instances' volumes, for their preparation.
pub fn plan(
    instances: &[Instance],
    volumes: &[Volume],
    node_tag: &str,
    only_node: Option<&NodeName>,
    slot: DateTime<Utc>,
) -> Vec<PlannedBackup> {
    let mut planned = Vec::new();
    let mut candidates: BTreeMap<NodeName, Vec<&Instance>> = BTreeMap::new();
    for instance in instances {
        let Some(value) = instance.tags.get(node_tag) else { continue };
        if only_node.is_some_and(|only| only.as_str() != value) {
            continue;
        }
        let skip = |reason: String| PlannedBackup {
            node: value.clone(),
            instance_id: instance.id.clone(),
            action: Action::Skip(reason),
            prepare: None,
        };
        match NodeName::new(value) {
            Err(reason) => planned.push(skip(format!("node name {reason}"))),
            Ok(_) if !matches!(instance.state, InstanceState::Running | InstanceState::Stopped) => {
                planned.push(skip(format!("instance is {}", instance.state)))
            }
            Ok(node) => candidates.entry(node).or_default().push(instance),
        }
    }
    for (node, mut instances) in candidates {
        // Running before stopped, then the newest launch, then the id for a stable order.
        instances.sort_by(|a, b| {
            (b.state == InstanceState::Running)
                .cmp(&(a.state == InstanceState::Running))
                .then(b.launch_time.cmp(&a.launch_time))
                .then(a.id.cmp(&b.id))
        });
        let chosen = instances[0];
        planned.push(PlannedBackup {
            node: node.to_string(),
            instance_id: chosen.id.clone(),
            action: Action::Create(scheduled_image(chosen, node_tag, &node, slot)),
            prepare: Some(prepare::plan(chosen, node_tag, &node, volumes)),
        });
        for other in &instances[1..] {
            planned.push(PlannedBackup {
                node: node.to_string(),
                instance_id: other.id.clone(),
                action: Action::Skip(format!("node {node} is backed up from {} instead", chosen.id)),
                prepare: None,
            });
        }
    }
    planned.sort_by(|a, b| (&a.node, &a.instance_id).cmp(&(&b.node, &b.instance_id)));
    planned
}

/// The image of one slot, with the launch spec a later relaunch reads back.
fn scheduled_image(instance: &Instance, node_tag: &str, node: &NodeName, slot: DateTime<Utc>) -> ImageSpec {
    let name = node.slot_image(slot);
    ImageSpec {
        instance_id: instance.id.clone(),
        description: format!(
            "lifeboat backup of node {node} ({}) for slot {}",
            instance.id,
            slot.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        tags: tags::backup(node_tag, node.as_str(), &instance.id, &name, "scheduled"),
        image_tags: LaunchSpec::from_instance(instance)
            .map(|mut spec| {
                // This run keeps the interface (see `prepare`), so the
                // image records it even when the description predates that.
                spec.interface_id = instance.primary_interface.as_ref().map(|a| a.interface_id.clone());
                spec.to_tags()
            })
            .unwrap_or_default(),
        name,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    pub slot: DateTime<Utc>,
    pub trigger: Trigger,
    pub dry_run: bool,
    pub node_tag: String,
    pub nodes: Vec<NodeResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeResult {
    pub node: String,
    pub instance: String,
    pub outcome: BackupOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What preparing the node for a relaunch did: `interface` and `volumes`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub preparation: Option<Preparation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupOutcome {
    Created,
    AlreadyExisted,
    WouldCreate,
    Skipped,
    Failed,
}

impl BackupReport {
    /// EMF lines: `BackupSucceeded` for each node whose backup for this slot
    /// exists, and `NodesBackedUp` (their number, 0 included) once per run:
    /// the "no backup in 26 hours" alarm watches the latter, so a run that
    /// backs up nothing counts against it, and a stack that never ran yet
    /// does not.
    pub fn metrics(&self, at: DateTime<Utc>) -> Vec<String> {
        let done: Vec<&NodeResult> = self
            .nodes
            .iter()
            .filter(|n| matches!(n.outcome, BackupOutcome::Created | BackupOutcome::AlreadyExisted))
            .collect();
        let mut lines: Vec<String> =
            done.iter().map(|n| crate::metrics::count("BackupSucceeded", &n.node, at)).collect();
        if !self.dry_run {
            lines.push(crate::metrics::value("NodesBackedUp", "Count", done.len() as f64, None, at));
        }
        lines
    }

    /// Nodes whose backup or preparation failed.
    pub fn failures(&self) -> impl Iterator<Item = &NodeResult> {
        self.nodes
            .iter()
            .filter(|n| n.outcome == BackupOutcome::Failed || n.preparation.as_ref().is_some_and(|p| p.failed()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("listing the tagged instances and their volumes failed: {0}")]
    Describe(CloudError),
    #[error("no instance carries the tag {tag}={node}")]
    NodeNotFound { tag: String, node: NodeName },
    #[error("{} of {} backups failed: {}", .0.failures().count(), .0.nodes.len(),
        .0.failures().map(|f| format!("{} ({}): {}", f.node, f.instance,
            f.reason.as_deref().or(f.preparation.as_ref().and_then(Preparation::error)).unwrap_or(""))).collect::<Vec<_>>().join("; "))]
    Failed(Box<BackupReport>),
}

impl FunctionError for BackupError {
    fn error_type(&self) -> &'static str {
        match self {
            BackupError::Event(_) => "InvalidEvent",
            BackupError::Describe(_) => "DescribeFailed",
            BackupError::NodeNotFound { .. } => "NodeNotFound",
            BackupError::Failed(_) => "BackupFailed",
        }
    }

    /// The request itself is wrong: an invalid event, a node no instance
    /// carries.
    fn is_permanent(&self) -> bool {
        matches!(self, BackupError::Event(_) | BackupError::NodeNotFound { .. })
    }

    fn report_json(&self) -> Option<Value> {
        BackupError::report(self).and_then(|r| serde_json::to_value(r).ok())
    }
}

impl BackupError {
    /// The report of an invocation that ran (and failed on some nodes).
    pub fn report(&self) -> Option<&BackupReport> {
        match self {
            BackupError::Failed(report) => Some(report),
            _ => None,
        }
    }
}

/// What scheduled-backup may do with EC2.
pub trait BackupCloud: Describe + Imaging + Preparing {}
/// [`BackupCloud`]'s ports, for the contract ([`crate::contract`]).
pub const PORTS: &[Port] = &[Port::Describe, Port::Imaging, Port::Preparing];
impl<T: Describe + Imaging + Preparing> BackupCloud for T {}

/// Parses the event and runs the backup. An invalid event fails before any
/// AWS call.
pub async fn handle(
    ec2: &impl BackupCloud,
    config: &Config,
    event: &Value,
    now: DateTime<Utc>,
) -> Result<BackupReport, BackupError> {
    let request = parse_event(event, now)?;
    run(ec2, config, &request).await
}

/// Lists the tagged instances and their volumes, plans, creates the images,
/// prepares the nodes, and reports. A failure on one node does not stop the
/// others; the invocation then returns [`BackupError::Failed`] with the whole
/// report, so Lambda's retry and the alarms see it, and the retry redoes only
/// what failed.
pub async fn run(
    ec2: &impl BackupCloud,
    config: &Config,
    request: &BackupRequest,
) -> Result<BackupReport, BackupError> {
    let instances = ec2.instances_with_tag(&config.node_tag).await.map_err(BackupError::Describe)?;
    let ids: Vec<String> = instances.iter().filter(|i| !i.state.is_gone()).map(|i| i.id.clone()).collect();
    let volumes =
        if ids.is_empty() { Vec::new() } else { ec2.volumes_attached_to(&ids).await.map_err(BackupError::Describe)? };
    let planned = plan(&instances, &volumes, &config.node_tag, request.node.as_ref(), request.slot);
    if let Some(node) = &request.node
        && planned.is_empty()
    {
        return Err(BackupError::NodeNotFound { tag: config.node_tag.clone(), node: node.clone() });
    }
    let dry_run = request.dry_run || config.dry_run;
    let nodes = stream::iter(planned)
        .map(|p| execute(ec2, &config.node_tag, p, dry_run))
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let report = BackupReport {
        slot: request.slot,
        trigger: request.trigger,
        dry_run,
        node_tag: config.node_tag.clone(),
        nodes,
    };
    if report.failures().next().is_some() {
        return Err(BackupError::Failed(Box::new(report)));
    }
    Ok(report)
}

async fn execute(ec2: &impl BackupCloud, node_tag: &str, planned: PlannedBackup, dry_run: bool) -> NodeResult {
    let preparation = match (&planned.prepare, NodeName::new(&planned.node)) {
        (Some(plan), Ok(node)) => Some(prepare::execute(ec2, plan, node_tag, &node, dry_run).await),
        _ => None,
    };
    let mut result = match planned.action {
        Action::Skip(reason) => NodeResult {
            node: planned.node,
            instance: planned.instance_id,
            outcome: BackupOutcome::Skipped,
            image_id: None,
            name: None,
            reason: Some(reason),
            preparation: None,
        },
        Action::Create(spec) if dry_run => NodeResult {
            node: planned.node,
            instance: planned.instance_id,
            outcome: BackupOutcome::WouldCreate,
            image_id: None,
            name: Some(spec.name),
            reason: None,
            preparation: None,
        },
        Action::Create(spec) => create(ec2, &planned.node, &planned.instance_id, &spec).await,
    };
    result.preparation = preparation;
    result
}

/// CreateImage, where an image of the same name means this backup was made
/// before (a redelivered event): reported as such with its id, unless that
/// image failed, which is a failed backup, not a made one.
pub async fn create(ec2: &(impl Imaging + Describe), node: &str, instance: &str, spec: &ImageSpec) -> NodeResult {
    let mut result = NodeResult {
        node: node.to_string(),
        instance: instance.to_string(),
        outcome: BackupOutcome::Failed,
        image_id: None,
        name: Some(spec.name.clone()),
        reason: None,
        preparation: None,
    };
    match ec2.create_image(spec).await {
        Ok(image_id) => {
            tracing::info!(node, instance, image = %image_id, name = %spec.name, "backup image created");
            result.outcome = BackupOutcome::Created;
            result.image_id = Some(image_id);
        }
        Err(e) if e.is(ErrorKind::AlreadyExists) => match ec2.image_named(&spec.name).await {
            Ok(Some(existing)) if existing.state == ImageState::Failed => {
                result.image_id = Some(existing.id.clone());
                result.reason = Some(format!(
                    "the image for this slot, {} ({}), failed; retention-pruner deletes it, the next slot makes a new one",
                    existing.id, spec.name
                ));
            }
            Ok(existing) => {
                result.outcome = BackupOutcome::AlreadyExisted;
                result.image_id = existing.map(|i| i.id);
                result.reason =
                    Some(format!("an image named {} exists already: this slot was backed up before", spec.name));
            }
            Err(e) => result.reason = Some(e.to_string()),
        },
        Err(e) => {
            tracing::error!(node, instance, error = %e, "backup failed");
            result.reason = Some(e.to_string());
        }
    }
    result
}
