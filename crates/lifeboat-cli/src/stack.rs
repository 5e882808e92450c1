//! The deployed stack as the tool knows it: its Outputs, read by key, never
//! a guessed function name.

use crate::ports::Stack;
use lifeboat_core::config::DEFAULT_NODE_TAG;

pub const SCHEDULED_BACKUP: &str = "ScheduledBackupFunctionName";
pub const RETENTION_PRUNER: &str = "RetentionPrunerFunctionName";
pub const INTERRUPTION_HANDLER: &str = "InterruptionHandlerFunctionName";
pub const TOPIC: &str = "TopicArn";
pub const FAILED_EVENTS: &str = "FailedEventsQueueUrl";
pub const REPAIR_DOCUMENT: &str = "RepairDocumentName";
pub const HEALTH_DOCUMENT: &str = "HealthDocumentName";
pub const DASHBOARD: &str = "DashboardName";
pub const EXPERIMENT_TEMPLATE: &str = "InterruptionExperimentTemplateId";
pub const NODE_ROLE: &str = "NodeRoleArn";
pub const KMS_KEYS: &str = "EbsKmsKeyArns";
pub const VERSION: &str = "Version";

/// The outputs every lifeboat stack of this version has.
pub const EXPECTED: &[&str] = &[
    SCHEDULED_BACKUP,
    RETENTION_PRUNER,
    INTERRUPTION_HANDLER,
    TOPIC,
    FAILED_EVENTS,
    REPAIR_DOCUMENT,
    HEALTH_DOCUMENT,
    DASHBOARD,
    VERSION,
];

/// Executions lifeboat may need at once: a relaunch, a backup and a prune.
pub const CONCURRENT_AT_LEAST: i32 = 3;

/// Why the stack cannot serve a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    #[error(
        "no stack {stack} in this region: deploy lifeboat first (sam deploy --stack-name {stack}), or pass --stack/--region"
    )]
    Missing { stack: String },
    #[error("stack {stack} has no output {key}{why}: update it with a lifeboat template that has it")]
    NoOutput { stack: String, key: &'static str, why: &'static str },
}

impl Stack {
    /// A non-empty output.
    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs.get(key).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    pub fn require(&self, key: &'static str) -> Result<&str, StackError> {
        let why = match key {
            EXPERIMENT_TEMPLATE => {
                " (the template creates it only when asked: deploy with the interruption experiment enabled)"
            }
            _ => "",
        };
        self.output(key).ok_or(StackError::NoOutput { stack: self.name.clone(), key, why })
    }

    /// The expected outputs the stack lacks (an older template).
    pub fn missing_outputs(&self) -> Vec<&'static str> {
        EXPECTED.iter().copied().filter(|k| self.output(k).is_none()).collect()
    }

    /// The KMS keys the stack's functions may use for EBS (EbsKmsKeyArns).
    pub fn kms_keys(&self) -> Vec<String> {
        self.output(KMS_KEYS)
            .map(|v| v.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The node tag key: fixed by the stack (its IAM conditions name it).
    pub fn node_tag(&self) -> String {
        DEFAULT_NODE_TAG.to_string()
    }

    /// Deployed and not failed: `*_COMPLETE` except the rollbacks of a create.
    pub fn is_deployed(&self) -> bool {
        self.status.ends_with("_COMPLETE") && !matches!(self.status.as_str(), "ROLLBACK_COMPLETE" | "DELETE_COMPLETE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(outputs: &[(&str, &str)]) -> Stack {
        Stack {
            name: "lifeboat".into(),
            status: "CREATE_COMPLETE".into(),
            outputs: outputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            parameters: Default::default(),
        }
    }

    #[test]
    fn outputs_are_read_by_key_and_a_missing_one_says_what_to_do() {
        let s = stack(&[(SCHEDULED_BACKUP, "lifeboat-scheduled-backup"), (EXPERIMENT_TEMPLATE, "")]);
        assert_eq!(s.require(SCHEDULED_BACKUP).unwrap(), "lifeboat-scheduled-backup");
        let e = s.require(EXPERIMENT_TEMPLATE).unwrap_err().to_string();
        assert!(e.contains("no output InterruptionExperimentTemplateId"), "{e}");
        assert!(e.contains("only when asked"), "{e}");
        assert!(s.require(INTERRUPTION_HANDLER).unwrap_err().to_string().contains("InterruptionHandlerFunctionName"));
    }

    #[test]
    fn kms_keys_are_a_comma_separated_list_that_may_be_empty() {
        assert!(stack(&[(KMS_KEYS, "")]).kms_keys().is_empty());
        assert_eq!(stack(&[(KMS_KEYS, "arn:a, arn:b,")]).kms_keys(), ["arn:a", "arn:b"]);
    }

    #[test]
    fn deployed_means_a_complete_state_that_is_not_a_failed_create() {
        let mut s = stack(&[]);
        for (status, deployed) in [
            ("CREATE_COMPLETE", true),
            ("UPDATE_COMPLETE", true),
            ("UPDATE_ROLLBACK_COMPLETE", true),
            ("ROLLBACK_COMPLETE", false),
            ("CREATE_IN_PROGRESS", false),
        ] {
            s.status = status.into();
            assert_eq!(s.is_deployed(), deployed, "{status}");
        }
    }
}
