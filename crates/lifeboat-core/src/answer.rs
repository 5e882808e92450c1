//! What a Lambda function answers for its result. A failure another attempt
//! may mend (an AWS call, a wait the deadline cut short, a run that failed
//! on some resources) is an error: Lambda retries it, then hands the event
//! to the failed-events queue, and the function's Errors alarm fires. A
//! failure no retry can mend (an invalid event, a node without a backup
//! image or launch spec, a node still alive, a node no instance carries) is
//! answered and not retried: the response holds the report or the reason,
//! the log holds the event to send again once the cause is mended, and the
//! `PermanentFailure` metric fires the stack's alarm of that name (a
//! relaunch or drill has published its report to the topic already). Either
//! way the failure names its kind (Lambda's `errorType`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt;

/// The metric a failure no retry can mend counts (namespace `lifeboat`).
pub const PERMANENT_FAILURE: &str = "PermanentFailure";

/// A function's failure, as Lambda is told it.
pub trait FunctionError: fmt::Display {
    /// Lambda's `errorType`: one name per kind of failure.
    fn error_type(&self) -> &'static str;
    /// No retry can mend it.
    fn is_permanent(&self) -> bool;
    /// The report of the run, when it ran.
    fn report_json(&self) -> Option<Value>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Done: the report.
    Done(Value),
    /// A failure no retry can mend: answered (the report, or the reason),
    /// not retried.
    Refused { error_type: &'static str, message: String, response: Value },
    /// A failure a retry may mend: Lambda's error, retried.
    Failed { error_type: &'static str, message: String },
}

impl Answer {
    pub fn of<R: Serialize, E: FunctionError>(result: Result<R, E>) -> Answer {
        match result {
            Ok(report) => {
                Answer::Done(serde_json::to_value(report).unwrap_or_else(|e| json!({"unserializable": e.to_string()})))
            }
            Err(e) if e.is_permanent() => {
                let message = e.to_string();
                let response = e
                    .report_json()
                    .unwrap_or_else(|| json!({"outcome": "rejected", "error_type": e.error_type(), "reason": message}));
                Answer::Refused { error_type: e.error_type(), message, response }
            }
            Err(e) => Answer::Failed { error_type: e.error_type(), message: e.to_string() },
        }
    }

    /// The EMF line of a failure no retry can mend.
    pub fn metrics(&self, at: DateTime<Utc>) -> Vec<String> {
        match self {
            Answer::Refused { .. } => vec![crate::metrics::value(PERMANENT_FAILURE, "Count", 1.0, None, at)],
            _ => Vec::new(),
        }
    }

    /// Prints the metric line, logs a refusal with its event (which no
    /// queue keeps), and gives Lambda's response or its error
    /// (`errorType`, `errorMessage`).
    pub fn emit(self, event: &Value, at: DateTime<Utc>) -> Result<Value, (&'static str, String)> {
        for line in self.metrics(at) {
            println!("{line}");
        }
        match self {
            Answer::Done(response) => Ok(response),
            Answer::Refused { error_type, message, response } => {
                tracing::error!(
                    error_type,
                    event = %event,
                    "{message}: not retried; send the event again once the cause is mended"
                );
                Ok(response)
            }
            Answer::Failed { error_type, message } => Err((error_type, message)),
        }
    }
}
