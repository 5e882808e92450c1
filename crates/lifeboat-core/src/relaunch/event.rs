//! What interruption-handler is invoked with: EC2's events through
//! EventBridge, or a person's request.

use crate::event::{EventError, json_kind};
use crate::node::NodeName;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Relaunch the node this instance was: a spot interruption that
    /// terminates it, or the instance going away without one.
    Relaunch { instance_id: String, trigger: String },
    /// A spot interruption that stops (or hibernates) the instance: EC2
    /// restarts it itself, with its disks and interface; at most an early
    /// backup, never a relaunch.
    Stop { instance_id: String, action: String },
    /// Take an early backup of the node; never relaunch.
    Rebalance { instance_id: String },
    /// Relaunch a node whose instance is gone.
    Restore { node: NodeName },
    /// A restore drill: a fenced clone of the node, checked, then removed
    /// unless `keep`.
    Drill { node: NodeName, keep: bool },
    /// Acknowledged, nothing to do.
    Ignore { reason: String },
}

impl Request {
    /// The report's `trigger`.
    pub fn trigger(&self) -> String {
        match self {
            Request::Relaunch { trigger, .. } => trigger.clone(),
            Request::Stop { action, .. } => format!("interruption-warning:{action}"),
            Request::Rebalance { .. } => "rebalance-recommendation".into(),
            Request::Restore { .. } => "restore".into(),
            Request::Drill { .. } => "test-restore".into(),
            Request::Ignore { .. } => "state-change".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Ec2Detail {
    instance_id: String,
    state: Option<String>,
    instance_action: Option<String>,
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
        return Ok((parse_manual(event)?, now));
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
        // instance-action is terminate, stop or hibernate (EC2 User Guide,
        // "Spot Instance interruption notices"); stop and hibernate keep the
        // instance, its volumes and its interface.
        "EC2 Spot Instance Interruption Warning" => match detail.instance_action.as_deref() {
            None | Some("terminate") => Request::Relaunch { instance_id, trigger: "interruption-warning".into() },
            Some(action @ ("stop" | "hibernate")) => Request::Stop { instance_id, action: action.to_string() },
            Some(other) => {
                return Err(EventError::Detail(format!(
                    "detail.instance-action {other:?} is not terminate, stop or hibernate"
                )));
            }
        },
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

fn parse_manual(event: &Value) -> Result<Request, EventError> {
    let manual: Manual = serde_json::from_value(event.clone()).map_err(|e| EventError::Manual {
        message: e.to_string(),
        expected: "{\"action\": \"restore\" or \"test-restore\", \"node\": \"<name>\"}",
    })?;
    let node = NodeName::new(&manual.node).map_err(|reason| EventError::NodeName { node: manual.node, reason })?;
    match (manual.action.as_str(), manual.keep) {
        ("restore", None) => Ok(Request::Restore { node }),
        ("restore", Some(_)) => Err(EventError::Detail("\"keep\" goes with \"test-restore\" only".into())),
        ("test-restore", keep) => Ok(Request::Drill { node, keep: keep.unwrap_or(false) }),
        (other, _) => {
            Err(EventError::Detail(format!("unknown action {other:?} (expected \"restore\" or \"test-restore\")")))
        }
    }
}
