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
pub const VERSION: &str = "StackVersion";

/// The stack's parameters preflight reads (DescribeStacks shows them).
pub const CAPACITY: &str = "CapacityStrategy";
pub const INSTANCE_TYPES: &str = "InstanceTypes";
/// CapacityStrategy's default in the template (and LIFEBOAT_CAPACITY's).
pub const DEFAULT_CAPACITY: &str = "spot-then-on-demand";

/// The template names its functions `<stack><suffix>`
/// (`FunctionName: !Sub ${AWS::StackName}-...`).
pub const FUNCTION_SUFFIXES: [&str; 3] = ["-scheduled-backup", "-retention-pruner", "-interruption-handler"];
/// Lambda: "If you specify only the function name, it is limited to 64
/// characters in length" (CreateFunction, FunctionName).
pub const FUNCTION_NAME_MAX: usize = 64;
/// The longest stack name whose every function name fits.
pub const STACK_NAME_MAX: usize = FUNCTION_NAME_MAX - longest(&FUNCTION_SUFFIXES);
/// SSM reserves document names beginning with these (CreateDocument, Name:
/// aws, amazon, amzn, and AWSEC2, AWSConfigRemediation, AWSSupport, which
/// begin with aws); the stack's documents are `<stack>-repair` and
/// `<stack>-health`. Refused in any letter case.
pub const RESERVED_DOCUMENT_PREFIXES: [&str; 3] = ["aws", "amazon", "amzn"];

const fn longest(suffixes: &[&str]) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < suffixes.len() {
        if suffixes[i].len() > max {
            max = suffixes[i].len();
        }
        i += 1;
    }
    max
}

/// A stack name lifeboat can be deployed as (clap's parser for `--stack`):
/// a CloudFormation stack name (letters, digits, hyphens, from a letter)
/// whose function names fit Lambda's limit and whose documents' names
/// SSM does not reserve.
pub fn parse_name(name: &str) -> Result<String, String> {
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err("a CloudFormation stack name is letters, digits and hyphens, beginning with a letter".into());
    }
    if name.len() > STACK_NAME_MAX {
        return Err(format!(
            "{} characters: its function {name}{} would be longer than the {FUNCTION_NAME_MAX} Lambda allows; \
             a lifeboat stack name has at most {STACK_NAME_MAX}",
            name.len(),
            FUNCTION_SUFFIXES[2],
        ));
    }
    let lower = name.to_ascii_lowercase();
    if let Some(prefix) = RESERVED_DOCUMENT_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
        return Err(format!(
            "it begins with {prefix}: its SSM documents {name}-repair and {name}-health would begin with a prefix \
             SSM reserves for AWS (aws, amazon, amzn)"
        ));
    }
    Ok(name.to_string())
}

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

/// The outputs the tool reads besides [`EXPECTED`]: each of them is one of
/// infra/template.yaml's too (a test checks them against it).
#[cfg(test)]
pub const READ_WHEN_PRESENT: &[&str] = &[EXPERIMENT_TEMPLATE, NODE_ROLE, KMS_KEYS];

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

    /// A non-empty parameter.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.get(key).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// Which purchase options a relaunch may use (CapacityStrategy).
    pub fn capacity(&self) -> &str {
        self.parameter(CAPACITY).unwrap_or(DEFAULT_CAPACITY)
    }

    /// The relaunch's instance types in order (InstanceTypes); empty: the
    /// lost instance's own type.
    pub fn instance_types(&self) -> Vec<String> {
        self.parameter(INSTANCE_TYPES)
            .map(|v| v.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect())
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

    /// The names under `Outputs:` in the template the stack is deployed from.
    fn template_outputs() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
        let template = std::fs::read_to_string(path).unwrap();
        let outputs = template.split("\nOutputs:\n").nth(1).expect("an Outputs section");
        outputs
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
            .filter(|name| !name.starts_with(' '))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_output_the_tool_reads_is_one_the_template_deploys() {
        let deployed = template_outputs();
        for name in READ_WHEN_PRESENT.iter().chain(EXPECTED) {
            assert!(deployed.iter().any(|d| d == name), "the template has no output {name}: {deployed:?}");
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
    fn the_longest_function_name_leaves_a_stack_name_43_characters() {
        assert_eq!(STACK_NAME_MAX, 43);
        let longest = "a".repeat(STACK_NAME_MAX);
        assert_eq!(parse_name(&longest).unwrap(), longest);
        for suffix in FUNCTION_SUFFIXES {
            assert!(format!("{longest}{suffix}").len() <= FUNCTION_NAME_MAX);
        }
        let e = parse_name(&"a".repeat(44)).unwrap_err();
        assert!(e.contains("44 characters") && e.contains("at most 43"), "{e}");
    }

    #[test]
    fn names_whose_documents_ssm_reserves_or_cloudformation_refuses_are_refused() {
        for name in ["aws", "AWS-lifeboat", "amazon-k8s", "Amzn1"] {
            let e = parse_name(name).unwrap_err();
            assert!(e.contains(&format!("{name}-repair")), "{e}");
        }
        for name in ["", "1lifeboat", "life_boat", "life boat"] {
            assert!(parse_name(name).unwrap_err().contains("letters, digits and hyphens"), "{name}");
        }
        for name in ["lifeboat", "k8s-prod-lifeboat", "lifeboat-aws"] {
            assert_eq!(parse_name(name).unwrap(), name);
        }
    }

    #[test]
    fn capacity_and_types_are_the_stacks_parameters_or_the_templates_defaults() {
        let mut s = stack(&[]);
        assert_eq!(s.capacity(), "spot-then-on-demand");
        assert!(s.instance_types().is_empty());
        s.parameters.insert(CAPACITY.into(), "on-demand".into());
        s.parameters.insert(INSTANCE_TYPES.into(), "m5.large,m5.metal".into());
        assert_eq!(s.capacity(), "on-demand");
        assert_eq!(s.instance_types(), ["m5.large", "m5.metal"]);
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
