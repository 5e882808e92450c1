//! The shapes a scheduled function is invoked with: an EventBridge rule's
//! "Scheduled Event", EventBridge Scheduler's bare `{}`, or a manual request
//! whose fields each function defines.

use crate::node::NodeNameError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// An EventBridge rule's "Scheduled Event": the time is the event's.
    ScheduledEvent,
    /// EventBridge Scheduler's bare `{}`: the time is the invocation's.
    Scheduler,
    /// A request sent by a person: the time is the invocation's.
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("invalid event: expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("invalid event: not an EventBridge event: {0}")]
    Envelope(String),
    #[error("invalid event: {function} accepts {accepted}, got detail-type {detail_type:?} from {event_source:?}")]
    WrongEventType { function: &'static str, accepted: &'static str, detail_type: String, event_source: String },
    #[error("invalid event: {0}")]
    Detail(String),
    #[error("invalid event: the Scheduled Event has no time")]
    NoTime,
    #[error("invalid event: {message} (expected an EventBridge Scheduled Event, {{}}, or {expected})")]
    Manual { message: String, expected: &'static str },
    #[error("invalid event: node {node:?}: {reason}")]
    NodeName { node: String, reason: NodeNameError },
}

/// A scheduled invocation: when, how it was triggered, and the manual
/// request's fields (their defaults for the other two shapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled<T> {
    pub time: DateTime<Utc>,
    pub trigger: Trigger,
    pub request: T,
}

/// Parses the event of a scheduled function. `T` is the function's manual
/// request (deny unknown fields, so a typo is an error, not a default);
/// `expected` describes it for the error message.
pub fn parse_scheduled<T: DeserializeOwned + Default>(
    event: &Value,
    now: DateTime<Utc>,
    function: &'static str,
    expected: &'static str,
) -> Result<Scheduled<T>, EventError> {
    let Some(object) = event.as_object() else {
        return Err(EventError::NotAnObject(json_kind(event)));
    };
    if object.contains_key("detail-type") {
        let envelope: aws_lambda_events::eventbridge::EventBridgeEvent =
            serde_json::from_value(event.clone()).map_err(|e| EventError::Envelope(e.to_string()))?;
        if envelope.detail_type != "Scheduled Event" || envelope.source != "aws.events" {
            return Err(EventError::WrongEventType {
                function,
                accepted: "EventBridge \"Scheduled Event\" from aws.events",
                detail_type: envelope.detail_type,
                event_source: envelope.source,
            });
        }
        let time = envelope.time.ok_or(EventError::NoTime)?;
        return Ok(Scheduled { time, trigger: Trigger::ScheduledEvent, request: T::default() });
    }
    let request: T =
        serde_json::from_value(event.clone()).map_err(|e| EventError::Manual { message: e.to_string(), expected })?;
    let trigger = if object.is_empty() { Trigger::Scheduler } else { Trigger::Manual };
    Ok(Scheduled { time: now, trigger, request })
}

pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
