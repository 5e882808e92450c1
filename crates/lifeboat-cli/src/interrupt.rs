//! `lifeboat interrupt`: a real spot interruption of the node through the
//! stack's FIS experiment template, then the recovery followed through AWS
//! (the replacement by its `lifeboat:replaces` tag, its root-volume task, its
//! repair command's result line) until a healthy control plane, timed from
//! the warning (the experiment's start).

use crate::output::Progress;
use crate::ports::{ExperimentTarget, Experiments, Nodes, Recovery, Stack};
use crate::stack;
use lifeboat_core::model::{Instance, InstanceState, RootTaskState};
use lifeboat_core::node::NodeName;
use lifeboat_core::ports::CommandState;
use lifeboat_core::relaunch::{NotHealthy, repair_verdict};
use lifeboat_core::tags;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// The resource type of `aws:ec2:send-spot-instance-interruptions` targets.
pub const SPOT_TARGET: &str = "aws:ec2:spot-instance";

/// How often the CLI looks while it follows a relaunch, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    pub poll: Duration,
    pub timeout: Duration,
}

impl Default for Polling {
    /// The warning's two minutes, the relaunch's waits (termination up to 4
    /// min, launch, SSM up to 5 min, repair up to 10 min) and some margin.
    fn default() -> Polling {
        Polling { poll: Duration::from_secs(5), timeout: Duration::from_secs(25 * 60) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Milestone {
    pub at_seconds: f64,
    pub step: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovered {
    pub node: String,
    pub experiment: String,
    pub old: String,
    pub replacement: String,
    /// From the experiment's start (the warning) to the repair's success
    /// as seen by polling (at most one poll interval late).
    pub seconds_to_healthy: f64,
    pub state_source: Option<String>,
    pub state_as_of: Option<String>,
    pub result: Option<String>,
    pub milestones: Vec<Milestone>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterruptError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Cloud(String),
    #[error("the experiment {id} ended {status}: {reason}")]
    Experiment { id: String, status: String, reason: String },
    #[error("the repair of {instance} failed: {reason}")]
    Repair { instance: String, reason: NotHealthy },
    #[error(
        "no healthy control plane {seconds} s after the warning (last seen: {last}); see `lifeboat status --node {node}` and the interruption-handler's logs"
    )]
    Timeout { seconds: u64, last: String, node: String },
}

impl From<lifeboat_core::model::CloudError> for InterruptError {
    fn from(e: lifeboat_core::model::CloudError) -> InterruptError {
        InterruptError::Cloud(e.to_string())
    }
}

/// Whether the template's targets select this node's instance: by the node
/// tag, or by the instance's ARN.
pub fn targets_node(targets: &[ExperimentTarget], node_tag: &str, node: &str, instance_id: &str) -> bool {
    let suffix = format!(":instance/{instance_id}");
    targets.iter().filter(|t| t.resource_type == SPOT_TARGET).any(|t| {
        t.resource_tags.get(node_tag).map(String::as_str) == Some(node)
            || t.resource_arns.iter().any(|arn| arn.ends_with(&suffix))
    })
}

/// The node's one running spot instance, or why it cannot be interrupted.
pub fn victim<'a>(instances: &'a [Instance], node_tag: &str, node: &str) -> Result<&'a Instance, InterruptError> {
    let running: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.tags.get(node_tag).map(String::as_str) == Some(node) && i.state == InstanceState::Running)
        .collect();
    match running.as_slice() {
        [one] if one.spot => Ok(one),
        [one] => Err(InterruptError::Refused(format!(
            "{} is on-demand: FIS interrupts spot instances only, and an on-demand node is never interrupted",
            one.id
        ))),
        [] => Err(InterruptError::Refused(format!("no running instance is tagged {node_tag}={node}"))),
        many => Err(InterruptError::Refused(format!(
            "{} running instances are tagged {node_tag}={node}: run lifeboat preflight --node {node}",
            many.len()
        ))),
    }
}

pub trait InterruptCloud: Nodes + Experiments + Recovery {}
impl<T: Nodes + Experiments + Recovery> InterruptCloud for T {}

pub async fn run(
    cloud: &impl InterruptCloud,
    stack: &Stack,
    node: &str,
    polling: Polling,
    progress: &Progress,
) -> Result<Recovered, InterruptError> {
    let name = NodeName::new(node).map_err(|e| InterruptError::Refused(format!("node name {node:?} {e}")))?;
    let template = stack.require(stack::EXPERIMENT_TEMPLATE).map_err(|e| InterruptError::Refused(e.to_string()))?;
    let node_tag = stack.node_tag();
    let instances = cloud.instances(&node_tag).await?;
    let old = victim(&instances, &node_tag, node)?.clone();
    let targets = cloud.template_targets(template).await?;
    if !targets_node(&targets, &node_tag, node, &old.id) {
        return Err(InterruptError::Refused(format!(
            "experiment template {template} does not target {node_tag}={node} ({}): deploy the stack with the experiment's node set to {node}",
            old.id
        )));
    }
    // One experiment per instance, however often this is retried.
    let experiment = cloud.start(template, &format!("lifeboat-interrupt-{}", old.id)).await?;
    let mut follow = Follow {
        started: Instant::now(),
        milestones: vec![Milestone {
            at_seconds: 0.0,
            step: "warning",
            detail: format!("experiment {} started", experiment.id),
        }],
    };
    progress.phase("the spot interruption warning: two minutes until EC2 reclaims the node");
    let comment = name.comment("repair");
    let mut replacement: Option<Instance> = None;
    let (mut old_gone, mut root_done) = (false, false);
    loop {
        let seen = cloud.experiment(&experiment.id).await?;
        if matches!(seen.status.as_str(), "failed" | "stopped" | "cancelled") {
            return Err(InterruptError::Experiment {
                id: seen.id,
                status: seen.status,
                reason: seen.reason.unwrap_or_default(),
            });
        }
        if !old_gone && cloud.instance(&old.id).await?.is_none_or(|i| i.state.is_gone()) {
            old_gone = true;
            follow.mark("terminated", format!("{} is gone", old.id));
            progress.phase("waiting for the replacement");
        }
        if replacement.is_none()
            && let Some(r) = cloud.replacement(&old.id).await?
        {
            follow
                .mark("launched", format!("{} ({})", r.id, r.tags.get(tags::STATE_SOURCE).map_or("?", String::as_str)));
            progress.phase("waiting for the replacement's repair");
            replacement = Some(r);
        }
        if let Some(r) = &replacement {
            if !root_done
                && let Some(state) = cloud.root_task(&r.id).await?
                && state.is_done()
            {
                root_done = true;
                let detail = if state == RootTaskState::Succeeded {
                    "the old root volume swapped in"
                } else {
                    "the root swap failed"
                };
                follow.mark("root-volume", detail.to_string());
            }
            match cloud.command(&r.id, &comment).await? {
                None | Some(CommandState::InProgress) => {}
                Some(state) => {
                    let (line, verdict) = repair_verdict(&state);
                    if let Err(reason) = verdict {
                        return Err(InterruptError::Repair { instance: r.id.clone(), reason });
                    }
                    let result = line.as_ref().and_then(|l| l["result"].as_str()).map(str::to_string);
                    follow.mark("healthy", format!("repair {}", result.as_deref().unwrap_or("succeeded")));
                    let current = cloud.instance(&r.id).await?.unwrap_or_else(|| r.clone());
                    return Ok(follow.done(node, experiment.id, old.id, current, result));
                }
            }
        }
        if follow.started.elapsed() >= polling.timeout {
            let last = follow.milestones.last().map(|m| format!("{} {}", m.step, m.detail)).unwrap_or_default();
            return Err(InterruptError::Timeout { seconds: polling.timeout.as_secs(), last, node: node.to_string() });
        }
        tokio::time::sleep(polling.poll).await;
    }
}

struct Follow {
    started: Instant,
    milestones: Vec<Milestone>,
}

impl Follow {
    fn mark(&mut self, step: &'static str, detail: String) {
        self.milestones.push(Milestone { at_seconds: self.started.elapsed().as_secs_f64(), step, detail });
    }

    fn done(
        self,
        node: &str,
        experiment: String,
        old: String,
        replacement: Instance,
        result: Option<String>,
    ) -> Recovered {
        Recovered {
            node: node.to_string(),
            experiment,
            old,
            seconds_to_healthy: self.started.elapsed().as_secs_f64(),
            state_source: replacement.tags.get(tags::STATE_SOURCE).cloned(),
            state_as_of: replacement.tags.get(tags::STATE_AS_OF).cloned(),
            replacement: replacement.id,
            result,
            milestones: self.milestones,
        }
    }
}

#[cfg(test)]
mod tests;
