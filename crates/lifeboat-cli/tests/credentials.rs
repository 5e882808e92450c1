//! Without credentials every command says, in one line, what to set, rather
//! than the SDK's account of each provider it tried, and exits 1 as for any
//! other AWS failure. Offline: no environment, no profile files, no IMDS.

use assert_cmd::Command;

const LINE: &str = "lifeboat: no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                    (or run on an instance with a role)\n";

/// `lifeboat` in an empty environment but for a region, with no
/// credentials anywhere the default chain looks.
fn lifeboat() -> Command {
    let mut cmd = Command::cargo_bin("lifeboat").unwrap();
    cmd.env_clear()
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/lifeboat-test/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/lifeboat-test/credentials");
    cmd
}

#[test]
fn every_command_says_what_to_set_in_one_line() {
    for args in [
        &["status"][..],
        &["preflight", "--node", "k8s-master"],
        &["backup", "--node", "k8s-master"],
        &["drill", "--node", "k8s-master"],
        &["restore", "--node", "k8s-master"],
        &["interrupt", "--node", "k8s-master", "--yes"],
    ] {
        let out = lifeboat().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), LINE, "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{args:?}");
    }
}

#[test]
fn with_json_the_error_is_on_stdout_too() {
    let out = lifeboat().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), LINE);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = LINE.strip_prefix("lifeboat: ").unwrap().trim_end();
    assert_eq!(json, serde_json::json!({"passed": false, "error": error}));
}
