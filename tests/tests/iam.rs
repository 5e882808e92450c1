//! Least privilege, checked: every AWS operation the adapters call is allowed
//! by infra/template.yaml and by infra/iam-policy.json (the role for
//! `cargo lambda deploy`), and neither allows an action the code never needs.

use lifeboat_tests::workspace_root;
use std::collections::BTreeSet;

/// Allowed although no SDK call is named after them: EC2 authorizes the
/// TagSpecifications of CreateImage and RunInstances as CreateTags, and
/// RunInstances with an instance profile as iam:PassRole of its role.
const IMPLIED: &[&str] = &["ec2:CreateTags", "iam:PassRole"];

fn pascal(snake: &str) -> String {
    snake.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}

/// `service:Operation` for each `.client.<operation>(` in an adapter source.
fn sdk_operations(file: &str, service: &str) -> BTreeSet<String> {
    let source = std::fs::read_to_string(workspace_root().join("crates/lifeboat-aws/src").join(file)).unwrap();
    let mut ops = BTreeSet::new();
    let mut rest = source.as_str();
    while let Some(at) = rest.find(".client") {
        rest = &rest[at + ".client".len()..];
        let after = rest.trim_start();
        if let Some(call) = after.strip_prefix('.') {
            let name: String = call.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if call[name.len()..].starts_with('(') && !name.is_empty() {
                ops.insert(format!("{service}:{}", pascal(&name)));
            }
        }
    }
    ops
}

/// Every `service:Action` token in a policy file.
fn policy_actions(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace_root().join("infra").join(file)).unwrap();
    let mut actions = BTreeSet::new();
    for service in ["ec2", "ssm", "iam", "sns", "sqs", "logs", "kms", "s3"] {
        let prefix = format!("{service}:");
        let mut rest = text.as_str();
        while let Some(at) = rest.find(&prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            // An action (ec2:CreateImage), not a condition key (ec2:CreateAction) or an ARN.
            let action_like = name.chars().next().is_some_and(|c| c.is_ascii_uppercase());
            if action_like && !matches!(before, Some('/') | Some('.')) && !is_condition_key(service, &name) {
                actions.insert(format!("{service}:{name}"));
            }
        }
    }
    actions
}

fn is_condition_key(service: &str, name: &str) -> bool {
    matches!((service, name), ("ec2", "CreateAction") | ("iam", "PassedToService"))
}

fn code_operations() -> BTreeSet<String> {
    let mut ops = sdk_operations("ec2.rs", "ec2");
    ops.extend(sdk_operations("ssm.rs", "ssm"));
    ops.extend(sdk_operations("sns.rs", "sns"));
    ops
}

#[test]
fn the_scan_finds_the_operations_the_adapters_call() {
    let ops = code_operations();
    for op in ["ec2:CreateImage", "ec2:RunInstances", "ec2:DeregisterImage", "ssm:SendCommand"] {
        assert!(ops.contains(op), "{op} not found in {ops:?}");
    }
    assert_eq!(ops.len(), 15, "{ops:?}");
}

fn check(file: &str) {
    let code = code_operations();
    let allowed = policy_actions(file);
    let missing: Vec<&String> = code.difference(&allowed).collect();
    assert!(missing.is_empty(), "{file} does not allow what the code calls: {missing:?}");
    let implied: BTreeSet<String> = IMPLIED.iter().map(|s| s.to_string()).collect();
    let extra: Vec<&String> = allowed.iter().filter(|a| !code.contains(*a) && !implied.contains(*a)).collect();
    assert!(extra.is_empty(), "{file} allows what the code never calls: {extra:?}");
}

#[test]
fn the_sam_template_allows_exactly_what_the_code_calls() {
    check("template.yaml");
}

#[test]
fn the_cargo_lambda_policy_allows_exactly_what_the_code_calls() {
    check("iam-policy.json");
}

#[test]
fn the_repair_document_is_the_script_the_handler_sends() {
    let status = std::process::Command::new("python3")
        .arg(workspace_root().join("infra/sync-repair-document.py"))
        .arg("--check")
        .status()
        .unwrap();
    assert!(status.success(), "run `make infra` to copy lifeboat-repair.sh into infra/template.yaml");
}
