//! `lifeboat backup`, `drill` and `restore`: one synchronous invocation of
//! the deployed function the stack's outputs name, and what its report says.

use crate::ports::{Functions, Invoked, Stack};
use crate::stack;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Backup,
    Drill,
    Restore,
}

impl Action {
    /// The stack output that names the function.
    pub fn function_output(self) -> &'static str {
        match self {
            Action::Backup => stack::SCHEDULED_BACKUP,
            Action::Drill | Action::Restore => stack::INTERRUPTION_HANDLER,
        }
    }

    /// The event, as the function's README section documents it.
    pub fn payload(self, node: &str) -> Value {
        match self {
            Action::Backup => json!({"node": node}),
            Action::Drill => json!({"action": "test-restore", "node": node}),
            Action::Restore => json!({"action": "restore", "node": node}),
        }
    }

    pub fn what(self) -> &'static str {
        match self {
            Action::Backup => "backup",
            Action::Drill => "restore drill",
            Action::Restore => "restore",
        }
    }
}

/// One row of the report's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub at_seconds: f64,
    pub step: String,
    pub detail: String,
}

/// What the invocation came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvokeResult {
    pub action: Action,
    pub node: String,
    pub function: String,
    pub passed: bool,
    /// The report's `outcome` (or `function-error`).
    pub outcome: String,
    /// One line a person reads first.
    pub headline: String,
    /// What state the node came back with, for a restore or a drill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub timeline: Vec<Step>,
    /// The function's whole report, or its error.
    pub report: Value,
}

/// Invokes the function for this action and reads its answer.
pub async fn run(
    functions: &impl Functions,
    stack: &Stack,
    action: Action,
    node: &str,
) -> Result<InvokeResult, String> {
    let function = stack.require(action.function_output()).map_err(|e| e.to_string())?;
    let invoked = functions.invoke(function, &action.payload(node)).await.map_err(|e| e.to_string())?;
    Ok(interpret(action, node, function, invoked))
}

pub fn interpret(action: Action, node: &str, function: &str, invoked: Invoked) -> InvokeResult {
    let base = |passed, outcome: &str, headline: String, report: Value| InvokeResult {
        action,
        node: node.to_string(),
        function: function.to_string(),
        passed,
        outcome: outcome.to_string(),
        headline,
        state: None,
        timeline: Vec::new(),
        report,
    };
    match invoked {
        Invoked::FunctionError { error_type, message } => base(
            false,
            "function-error",
            format!("the {} of {node} FAILED: {message}", action.what()),
            json!({"errorType": error_type, "errorMessage": message}),
        ),
        // A request no retry can mend, answered (not failed) by the function.
        Invoked::Response(report) if report["outcome"] == "rejected" => {
            let reason = report["reason"].as_str().unwrap_or("?").to_string();
            base(false, "rejected", format!("the {} of {node} FAILED: {reason}", action.what()), report)
        }
        Invoked::Response(report) if action == Action::Backup => {
            let (passed, outcome, headline) = backup_headline(node, &report);
            base(passed, &outcome, headline, report)
        }
        Invoked::Response(report) => {
            let outcome = report["outcome"].as_str().unwrap_or("?").to_string();
            let passed = matches!(outcome.as_str(), "relaunched" | "resumed" | "already-done" | "drill-passed");
            let mut o = base(passed, &outcome, relaunch_headline(action, node, &report), Value::Null);
            o.state = state_line(&report["state"]);
            o.timeline = timeline(&report["timeline"]);
            o.report = report;
            o
        }
    }
}

fn backup_headline(node: &str, report: &Value) -> (bool, String, String) {
    let entries = report["nodes"].as_array().cloned().unwrap_or_default();
    let Some(entry) = entries.iter().find(|n| n["node"] == node) else {
        return (false, "missing".into(), format!("the report names no backup of {node}"));
    };
    let outcome = entry["outcome"].as_str().unwrap_or("?").to_string();
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut line = format!("{node} ({}): {outcome}", text(&entry["instance"]));
    if let Some(image) = entry["image_id"].as_str() {
        line.push_str(&format!(" {} {image}", text(&entry["name"])));
    }
    if let Some(reason) = entry["reason"].as_str() {
        line.push_str(&format!(": {reason}"));
    }
    for part in ["interface", "volumes"] {
        if let Some(prepared) = entry[part]["outcome"].as_str() {
            line.push_str(&format!("; {part} {prepared}"));
        }
    }
    let prepared_ok = ["interface", "volumes"].iter().all(|p| entry[*p]["outcome"] != "failed");
    (matches!(outcome.as_str(), "created" | "already-existed") && prepared_ok, outcome, line)
}

fn relaunch_headline(action: Action, node: &str, r: &Value) -> String {
    let new = r["replacement"]["id"].as_str().unwrap_or("?");
    let ip = r["replacement"]["private_ip"].as_str().unwrap_or("?");
    match r["outcome"].as_str().unwrap_or("?") {
        "drill-passed" => format!("the restore drill of {node} passed on clone {new} ({ip})"),
        "relaunched" | "resumed" => {
            let same = if r["replacement"]["same_ip"] == true { "the same private IP" } else { "a NEW private IP" };
            format!("{node} was restored as {new} on {ip} ({same})")
        }
        "already-done" => format!("{node} was restored already as {new}"),
        "failed" => format!("the {} of {node} FAILED: {}", action.what(), r["reason"].as_str().unwrap_or("?")),
        other => format!("the {} of {node}: {other}", action.what()),
    }
}

/// `backup of 2026-11-30T01:00:00Z (ami-...)`, from the report's `state`.
pub fn state_line(state: &Value) -> Option<String> {
    let source = state["source"].as_str()?;
    let as_of = state["as_of"].as_str().unwrap_or("?");
    let image = state["image_id"].as_str().map(|i| format!(" ({i})")).unwrap_or_default();
    let what = match source {
        "old-volumes" => "the old instance's own disks (nothing lost)",
        "final-image" => "the image taken at the interruption",
        "backup" => "the newest backup image",
        other => other,
    };
    Some(format!("{what}, as of {as_of}{image}"))
}

fn timeline(steps: &Value) -> Vec<Step> {
    steps
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Step {
            at_seconds: s["at_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            step: s["step"].as_str().unwrap_or("?").to_string(),
            detail: s["detail"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
