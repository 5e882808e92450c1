//! `make bench-flows`: scheduled-backup at 1, 20 and 200 nodes beside the
//! original cron script's backup step (its `aws ec2 create-image` per node,
//! with the aws CLI), and relaunches on the old disks: per wait, how long after
//! AWS reached the state lifeboat noticed it, and the API calls per relaunch.
//! Runs the debug binaries against the emulator; prints Markdown tables. A
//! benchmark, not a test: it asserts nothing about time.

use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, fixture, warning, workspace_root};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(600);

async fn backups() {
    let aws = workspace_root().join(".venv-bench/bin/aws");
    println!("| nodes | tool | wall time | API calls | peak memory |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    for nodes in [1usize, 20, 200] {
        let emu = Emulator::new();
        let subnet = emu.subnet().await;
        for i in 0..nodes {
            emu.launch(&subnet, &[("lifeboat:node", &format!("node-{i:03}"))]).await;
        }
        let before = emu.total_calls();
        let started = Instant::now();
        let run = invoke(
            "scheduled-backup",
            &emu.function_env("scheduled-backup"),
            &[fixture("scheduled-backup.json")],
            TIMEOUT,
        );
        let elapsed = started.elapsed();
        let report = run.invocations.into_iter().next().unwrap_or_else(|| panic!("{}", run.stderr)).response();
        assert_eq!(report["nodes"].as_array().unwrap().len(), nodes);
        let made = emu.total_calls() - before;
        println!(
            "| {nodes} | scheduled-backup | {:.2} s | {made} | {:.1} MiB |",
            elapsed.as_secs_f64(),
            run.peak_rss_kib.unwrap_or(0) as f64 / 1024.0
        );
        if !aws.exists() {
            continue;
        }
        // The script's step, once per node as a person would extend it.
        let emu = Emulator::new();
        let subnet = emu.subnet().await;
        for i in 0..nodes {
            emu.launch(&subnet, &[("lifeboat:node", &format!("node-{i:03}"))]).await;
        }
        let script = r#"for id in $(aws ec2 describe-instances --filters Name=tag-key,Values=lifeboat:node --query 'Reservations[].Instances[].InstanceId' --output text); do
  aws ec2 create-image --instance-id "$id" --name "k8s-$id-$(date +%Y%m%d)" --no-reboot >/dev/null
done"#;
        let before = emu.total_calls();
        let started = Instant::now();
        let output = std::process::Command::new("bash")
            .args(["-c", script])
            .envs(emu.env())
            .env("PATH", format!("{}:{}", aws.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default()))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let elapsed = started.elapsed();
        let made = emu.total_calls() - before;
        println!(
            "| {nodes} | original script | {:.2} s | {made} | n/a (one aws process per call) |",
            elapsed.as_secs_f64()
        );
    }
}

/// The emulator's account-wide event log: (resource, event) -> when.
fn events(emu: &Emulator) -> Vec<(String, String, f64)> {
    let log = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    log.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["resource"].as_str().unwrap().into(), e["event"].as_str().unwrap().into(), e["at"].as_f64().unwrap())
        })
        .collect()
}

fn last(events: &[(String, String, f64)], resource: &str, event: &str) -> Option<f64> {
    events.iter().rev().find(|(r, e, _)| r == resource && e == event).map(|(_, _, at)| *at)
}

/// One relaunch on the old disks with AWS's delays shortened (EC2 reclaims
/// the node 5 s after the warning): per wait, how long after AWS reached the
/// state lifeboat noticed it, and the calls it made.
async fn relaunch_once(lags: &mut BTreeMap<&'static str, Vec<f64>>, per_operation: &mut BTreeMap<String, u64>) {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({"ssm_online_seconds": 3, "root_task_seconds": 4, "reboot_seconds": 2, "ssm_command_seconds": 2}),
    );
    emu.command_results(&[r#"{"result":"ok","step":"verify","guard":"released"}"#]);
    let before = emu.call_counts();
    emu.interrupt(&node.instance, "terminate", 5.0);
    let run =
        invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(&node.instance)], TIMEOUT);
    let started = run.handed_out[0].duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let report = run.invocations.into_iter().next().unwrap_or_else(|| panic!("{}", run.stderr)).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    assert_eq!(report["state"]["source"], "old-volumes", "{report}");
    let log = events(&emu);
    let step = |name: &str| {
        report["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["step"] == name)
            .and_then(|s| s["at_ms"].as_f64())
    };
    let replacement = report["replacement"]["id"].as_str().unwrap().to_string();
    let task =
        log.iter().find(|(r, e, _)| r.starts_with("replacevol-") && e == "task-succeeded").map(|(r, ..)| r.clone());
    let command = report["command"]["command_id"].as_str().unwrap_or_default().to_string();
    let released = [&node.root_volume, &node.data_volume]
        .iter()
        .filter_map(|v| last(&log, v, "volume-available"))
        .fold(0.0, f64::max);
    let waits: [(&'static str, &str, Option<f64>); 6] = [
        ("the old instance terminated", "old-terminated", last(&log, &node.instance, "terminated")),
        ("its volumes released", "old-volumes", Some(released).filter(|r| *r > 0.0)),
        ("the replacement running", "running", last(&log, &replacement, "running")),
        ("the root volume swapped", "root-swapped", task.as_deref().and_then(|t| last(&log, t, "task-succeeded"))),
        ("the SSM agent online after the swap", "ssm-online", last(&log, &replacement, "online")),
        ("the repair finished", "repaired", last(&log, &command, "command-finished")),
    ];
    for (wait, name, reached) in waits {
        if let (Some(noticed), Some(reached)) = (step(name), reached) {
            lags.entry(wait).or_default().push(started + noticed / 1000.0 - reached);
        }
    }
    for (op, n) in emu.call_counts() {
        let delta = n - before.get(&op).copied().unwrap_or(0);
        if !op.is_empty() && delta > 0 {
            *per_operation.entry(op).or_default() += delta;
        }
    }
}

async fn relaunches() {
    const RUNS: usize = 5;
    let mut lags: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut per_operation: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..RUNS {
        relaunch_once(&mut lags, &mut per_operation).await;
    }
    println!(
        "\n| wait ({RUNS} relaunches on the old disks) | lifeboat noticed it after AWS reached it: median | max |"
    );
    println!("| --- | ---: | ---: |");
    for (wait, mut seconds) in lags {
        seconds.sort_by(f64::total_cmp);
        println!("| {wait} | {:.1} s | {:.1} s |", seconds[seconds.len() / 2], seconds[seconds.len() - 1]);
    }
    println!("\n| operation | calls per relaunch |");
    println!("| --- | ---: |");
    for (op, n) in &per_operation {
        println!("| {op} | {:.1} |", *n as f64 / RUNS as f64);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    backups().await;
    relaunches().await;
}
