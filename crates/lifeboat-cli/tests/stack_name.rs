//! A stack name lifeboat cannot be deployed as is refused before anything
//! is built or created: by the Makefile's `deploy` and `deploy-lambda`, and
//! by `lifeboat --stack`. The limit is what the template's longest function
//! name leaves of Lambda's 64 characters; SSM reserves document names
//! beginning with aws, amazon or amzn.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::PathBuf;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The longest stack name: 43 characters.
const MAX: usize = 43;

#[test]
fn the_limit_is_what_the_templates_longest_function_name_leaves_of_64() {
    let template = std::fs::read_to_string(workspace().join("infra/template.yaml")).unwrap();
    let suffixes: Vec<&str> =
        template.lines().filter_map(|l| l.trim().strip_prefix("FunctionName: !Sub ${AWS::StackName}")).collect();
    assert_eq!(suffixes.len(), 3, "the template's function names: {suffixes:?}");
    assert_eq!(64 - suffixes.iter().map(|s| s.len()).max().unwrap(), MAX, "{suffixes:?}");
}

/// `make -n GOAL STACK=...`: the Makefile is read (its checks run), no
/// recipe is.
fn make_dry_run(goal: &str, stack: &str) -> std::process::Output {
    std::process::Command::new("make")
        .current_dir(workspace())
        .args(["-n", goal, &format!("STACK={stack}")])
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .unwrap()
}

#[test]
fn make_deploy_and_deploy_lambda_refuse_a_name_too_long_or_reserved() {
    let longest = "k".repeat(MAX);
    for goal in ["deploy", "deploy-lambda"] {
        let ok = make_dry_run(goal, &longest);
        assert!(ok.status.success(), "{goal}: {}", String::from_utf8_lossy(&ok.stderr));

        let long = "k".repeat(MAX + 1);
        let out = make_dry_run(goal, &long);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{goal} took a {}-character name", MAX + 1);
        assert!(stderr.contains("has 44 characters") && stderr.contains("use at most 43"), "{stderr}");
        assert!(out.stdout.is_empty(), "{goal} went on: {}", String::from_utf8_lossy(&out.stdout));

        for reserved in ["aws-lifeboat", "Amazon-k8s", "amzn"] {
            let out = make_dry_run(goal, reserved);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{goal} took {reserved}");
            assert!(stderr.contains(&format!("{reserved}-repair")) && stderr.contains("reserves"), "{stderr}");
        }
    }
}

fn lifeboat() -> Command {
    let mut cmd = Command::cargo_bin("lifeboat").unwrap();
    cmd.env_clear().env("COLUMNS", "100");
    cmd
}

#[test]
fn lifeboat_refuses_such_a_stack_name_as_a_usage_error_before_any_aws_call() {
    lifeboat()
        .args(["--stack", &"k".repeat(MAX + 1), "status"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("44 characters").and(predicate::str::contains("at most 43")));
    lifeboat()
        .args(["status", "--stack", "AWS-lifeboat"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("AWS-lifeboat-repair"));
    // The longest name is taken: interrupt then refuses, as it does, for --yes.
    lifeboat()
        .args(["--stack", &"k".repeat(MAX), "interrupt", "--node", "k8s-master"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("add --yes"));
}
