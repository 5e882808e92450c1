//! `make bench-flows`: scheduled-backup at 1, 20 and 200 nodes beside the
//! original cron script's backup step (its `aws ec2 create-image` per node,
//! with the aws CLI), and the relaunch path's own time and API calls per step.
//! Runs the debug binaries against the emulator; prints Markdown tables. A
//! benchmark, not a test: it asserts nothing about time.

use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, fixture, workspace_root};
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
        let run = invoke("scheduled-backup", &emu.env(), &[fixture("scheduled-backup.json")], TIMEOUT);
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

async fn relaunches() {
    const RUNS: usize = 10;
    let mut launched = Vec::new();
    let mut commanded = Vec::new();
    let mut per_operation: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..RUNS {
        let emu = Emulator::new();
        emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
        let subnet = emu.subnet().await;
        let old = emu.launch(&subnet, &[("lifeboat:node", "k8s-master")]).await;
        let run = invoke("scheduled-backup", &emu.env(), &[fixture("scheduled-backup.json")], TIMEOUT);
        run.invocations.into_iter().next().unwrap_or_else(|| panic!("{}", run.stderr)).response();
        emu.ec2().await.terminate_instances().instance_ids(&old).send().await.unwrap();
        let before = emu.call_counts();
        let mut warning = fixture("spot-interruption-warning.json");
        warning["detail"]["instance-id"] = json!(old);
        let run = invoke("interruption-handler", &emu.env(), &[warning], TIMEOUT);
        let report = run.invocations.into_iter().next().unwrap_or_else(|| panic!("{}", run.stderr)).response();
        assert_eq!(report["outcome"], "relaunched", "{report}");
        let at = |step: &str| {
            report["timeline"].as_array().unwrap().iter().find(|s| s["step"] == step).and_then(|s| s["at_ms"].as_u64())
        };
        launched.push(at("launched").unwrap());
        commanded.push(at("command-sent").unwrap());
        let after = emu.call_counts();
        for (op, n) in after {
            let delta = n - before.get(&op).copied().unwrap_or(0);
            if !op.is_empty() && delta > 0 {
                *per_operation.entry(op).or_default() += delta;
            }
        }
    }
    launched.sort();
    commanded.sort();
    println!(
        "\n| relaunch (old instance already terminated, emulator answering at once), {RUNS} runs | median | max |"
    );
    println!("| --- | ---: | ---: |");
    println!("| warning received → RunInstances returned | {} ms | {} ms |", launched[RUNS / 2], launched[RUNS - 1]);
    println!("| warning received → SendCommand returned | {} ms | {} ms |", commanded[RUNS / 2], commanded[RUNS - 1]);
    // The least a relaunch can do: read the old instance, look for an existing
    // replacement, list images, check the kept interface, launch, see it run,
    // see it in SSM, look for an earlier repair, send it, read its result.
    let minimum: BTreeMap<&str, u64> = BTreeMap::from([
        ("DescribeInstances", 3),
        ("DescribeImages", 1),
        ("DescribeNetworkInterfaces", 1),
        ("RunInstances", 1),
        ("DescribeInstanceInformation", 1),
        ("ListCommands", 1),
        ("SendCommand", 1),
        ("GetCommandInvocation", 1),
    ]);
    println!("\n| operation | calls per relaunch | minimum |");
    println!("| --- | ---: | ---: |");
    for (op, n) in &per_operation {
        println!("| {op} | {:.1} | {} |", *n as f64 / RUNS as f64, minimum.get(op.as_str()).copied().unwrap_or(0));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    backups().await;
    relaunches().await;
}
