//! Why a relaunch or a drill failed: one typed failure for every step.

use super::report::RelaunchReport;
use crate::answer::FunctionError;
use crate::event::EventError;
use crate::model::CloudError;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Failure {
    /// An AWS call failed (after the SDK's retries).
    #[error("{0}")]
    Cloud(CloudError),
    /// A wait ran out: its own bound, or the Lambda deadline (the retry
    /// resumes from what AWS shows).
    #[error("waiting for {what}: not after {seconds} s{hint}")]
    Timeout { what: String, seconds: u64, hint: String },
    #[error("node {node} has no available backup image to launch from")]
    NoImage { node: String },
    #[error("no launch spec for node {node}: the old instance is gone and image {image} records none")]
    NoSpec { node: String, image: String },
    #[error("no capacity for node {node} in any allowed type and market ({capacity})")]
    NoCapacity { node: String, capacity: String },
    #[error(
        "node {node} still has instance {instance} ({state}): terminate it first, a restore would fight it for its IP"
    )]
    NodeAlive { node: String, instance: String, state: String },
    #[error("instance {instance} is {state}")]
    InstanceGone { instance: String, state: String },
    #[error(
        "{rounds} replacements of node {node} were lost to their own launch or recovery in this invocation (see the timeline)"
    )]
    ReplacementsLost { node: String, rounds: usize },
    #[error("the launch with token {token} made instance {instance}, which is {state}")]
    TokenTaken { token: String, instance: String, state: String },
    /// The repair script reported a failure (its step and message).
    #[error("{0}")]
    Repair(String),
    /// The replacement could not be prepared for the next interruption.
    #[error("preparing {instance} for the next interruption failed: {error}")]
    Preparation { instance: String, error: String },
    /// A drill's clone was repaired but is not healthy.
    #[error("the clone is not healthy: {0}")]
    Unhealthy(String),
    /// A drill could not go on.
    #[error("{0}")]
    Drill(String),
    /// The deployment lacks what this needs (a drill's own identity and
    /// network): no retry changes the deployment's settings.
    #[error("{0}")]
    NotConfigured(String),
    /// A drill could not remove what it made (and why it failed before, if it did).
    #[error("{0}")]
    Cleanup(String),
}

impl Failure {
    /// Lambda's `errorType` for it.
    pub fn error_type(&self) -> &'static str {
        match self {
            Failure::Cloud(_) => "CloudError",
            Failure::Timeout { .. } => "Timeout",
            Failure::NoImage { .. } => "NoImage",
            Failure::NoSpec { .. } => "NoSpec",
            Failure::NoCapacity { .. } => "NoCapacity",
            Failure::NodeAlive { .. } => "NodeAlive",
            Failure::InstanceGone { .. } => "InstanceGone",
            Failure::ReplacementsLost { .. } => "ReplacementsLost",
            Failure::TokenTaken { .. } => "TokenTaken",
            Failure::Repair(_) => "RepairFailed",
            Failure::Preparation { .. } => "PreparationFailed",
            Failure::Unhealthy(_) => "Unhealthy",
            Failure::Drill(_) => "DrillFailed",
            Failure::NotConfigured(_) => "NotConfigured",
            Failure::Cleanup(_) => "CleanupFailed",
        }
    }

    /// No retry can mend it: what AWS shows, or the deployment's settings,
    /// would not change by itself (a person makes a backup, records a spec,
    /// ends the node, or sets what a drill needs).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Failure::NoImage { .. } | Failure::NoSpec { .. } | Failure::NodeAlive { .. } | Failure::NotConfigured(_)
        )
    }
}

impl From<CloudError> for Failure {
    fn from(e: CloudError) -> Failure {
        Failure::Cloud(e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelaunchError {
    /// The event was not one interruption-handler accepts: nothing was done.
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("{} of node {} failed: {}",
        if .0.trigger == "test-restore" { "restore drill" } else { "relaunch" },
        .0.node.as_deref().unwrap_or("?"), .0.reason.as_deref().unwrap_or("?"))]
    Failed(Box<RelaunchReport>),
}

impl FunctionError for RelaunchError {
    fn error_type(&self) -> &'static str {
        match self {
            RelaunchError::Event(_) => "InvalidEvent",
            RelaunchError::Failed(report) => report.failure.as_ref().map_or("RelaunchFailed", Failure::error_type),
        }
    }

    fn is_permanent(&self) -> bool {
        match self {
            RelaunchError::Event(_) => true,
            RelaunchError::Failed(report) => report.failure.as_ref().is_some_and(Failure::is_permanent),
        }
    }

    fn report_json(&self) -> Option<Value> {
        RelaunchError::report(self).and_then(|r| serde_json::to_value(r).ok())
    }
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
