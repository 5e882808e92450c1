//! CloudWatch metrics as Embedded Metric Format log lines: printed to stdout
//! by the Lambda binaries, turned into metrics by CloudWatch Logs, watched by
//! the alarms and the dashboard in infra/template.yaml. Namespace `lifeboat`;
//! a node's metrics with and without the `Node` dimension.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

pub const NAMESPACE: &str = "lifeboat";

/// One EMF line: `metric` = 1 for `node`.
pub fn count(metric: &str, node: &str, at: DateTime<Utc>) -> String {
    value(metric, "Count", 1.0, Some(node), at)
}

/// One EMF line: `metric` = `value` in `unit`, for `node` (and for all
/// nodes together) or, without a node, for the whole stack.
pub fn value(metric: &str, unit: &str, value: f64, node: Option<&str>, at: DateTime<Utc>) -> String {
    let dimensions = if node.is_some() { json!([["Node"], []]) } else { json!([[]]) };
    let mut line = json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": [{"Name": metric, "Unit": unit}],
            }],
        },
        metric: value,
    });
    if let Some(node) = node {
        line["Node"] = json!(node);
    }
    line.to_string()
}

/// What every Lambda binary does with a report: its EMF lines on stdout
/// (CloudWatch turns them into metrics), the report itself in the log.
pub fn emit<R: Serialize>(report: &R, metric_lines: &[String], message: &str) {
    for line in metric_lines {
        println!("{line}");
    }
    let report = serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"unserializable\": \"{e}\"}}"));
    tracing::info!(report = %report, "{message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_emf_line_names_the_metric_its_dimensions_and_value() {
        let line = count("BackupSucceeded", "k8s-master", Utc.timestamp_millis_opt(1_764_118_800_000).unwrap());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_764_118_800_000i64);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "lifeboat");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "BackupSucceeded");
        assert_eq!(v["Node"], "k8s-master");
        assert_eq!(v["BackupSucceeded"], 1.0);
    }

    #[test]
    fn a_stack_wide_value_has_no_node() {
        let line = value("NodesBackedUp", "Count", 0.0, None, Utc.timestamp_millis_opt(0).unwrap());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([[]]));
        assert_eq!(v["NodesBackedUp"], 0.0);
        assert!(v.get("Node").is_none());
    }
}
