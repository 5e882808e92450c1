//! The help a person reads, held in snapshots (tests/snapshots/), and the
//! usage errors (exit code 2).

use assert_cmd::Command;
use predicates::prelude::*;

fn lifeboat() -> Command {
    let mut cmd = Command::cargo_bin("lifeboat").unwrap();
    // No terminal, no colours, a fixed width: the same text everywhere.
    cmd.env_clear().env("COLUMNS", "100");
    cmd
}

fn help(args: &[&str]) -> String {
    let out = lifeboat().args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_tools_help_lists_every_command_and_the_exit_codes() {
    insta::assert_snapshot!("lifeboat", help(&[]));
}

#[test]
fn each_command_has_its_own_help() {
    for command in ["preflight", "status", "backup", "drill", "restore", "interrupt"] {
        insta::assert_snapshot!(command, help(&[command]));
    }
}

#[test]
fn usage_errors_exit_2() {
    lifeboat().assert().code(2).stderr(predicate::str::contains("Usage: lifeboat"));
    lifeboat().args(["preflight"]).assert().code(2).stderr(predicate::str::contains("--node <NAME>"));
    lifeboat().args(["status", "--bogus"]).assert().code(2);
}

#[test]
fn interrupt_refuses_without_yes_before_any_aws_call() {
    lifeboat()
        .args(["interrupt", "--node", "k8s-master"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("terminates k8s-master's instance for real: add --yes"));
}
