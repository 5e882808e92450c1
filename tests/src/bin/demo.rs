//! `make demo`: the emulator, a tagged spot node "k8s-master", and lifeboat's
//! real binaries run against it, told as a person reads it.

use lifeboat_tests::runtime::{self, invoke};
use lifeboat_tests::{Emulator, fixture, stack};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn answer(name: &str, emu: &Emulator, events: &[Value]) -> Vec<Value> {
    let run = invoke(name, &emu.function_env(name), events, TIMEOUT);
    if run.invocations.len() != events.len() {
        eprintln!("{name} did not answer every event:\n{}", run.stderr);
        std::process::exit(1);
    }
    run.invocations.into_iter().map(|i| i.response()).collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn timeline(report: &Value) {
    println!("  timeline:");
    for step in report["timeline"].as_array().unwrap() {
        let at = step["at_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        println!("    {at:>7.1} s  {:<18} {}", text(&step["step"]), text(&step["detail"]));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
    let subnet = emu.subnet().await;
    let master = emu.launch_node(&subnet, &[("lifeboat:node", "k8s-master"), ("Name", "k8s-master")]).await;
    let web = emu.launch(&subnet, &[("Name", "web")]).await;
    println!("emulator {} (account {})", emu.url, emu.account);
    println!("seeded  {master}: spot, a root and a data volume, tagged lifeboat:node=k8s-master");
    println!("        {web}: no lifeboat tag");

    println!("\n== scheduled-backup: the 01:00 Scheduled Event, delivered twice");
    let event = fixture("scheduled-backup.json");
    for (i, report) in answer("scheduled-backup", &emu, &[event.clone(), event]).iter().enumerate() {
        for node in report["nodes"].as_array().unwrap() {
            println!(
                "  delivery {}: {} ({}) -> {} {} {}; interface {}, {} volumes {}",
                i + 1,
                text(&node["node"]),
                text(&node["instance"]),
                text(&node["outcome"]),
                text(&node["name"]),
                text(&node["image_id"]),
                text(&node["interface"]["outcome"]),
                node["volumes"]["volumes"].as_array().map_or(0, Vec::len),
                text(&node["volumes"]["outcome"]),
            );
        }
    }
    // From here on images take as long as on AWS: the final backup stays pending.
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 600}));

    let root = emu.volume_at(&master, "/dev/xvda").await.or(emu.volume_at(&master, "/dev/sda1").await).unwrap();
    println!("\n== 09:12: the cluster writes state after the backup (a tag on {root} stands for it)");
    let marker = aws_sdk_ec2::types::Tag::builder().key("etcd-revision").value("1042 (written at 09:12)").build();
    emu.ec2().await.create_tags().resources(&root).tags(marker).send().await.unwrap();

    println!("\n== EC2 Spot Instance Interruption Warning for {master}; EC2 reclaims it 2 s later");
    let mut warning = fixture("spot-interruption-warning.json");
    warning["detail"]["instance-id"] = json!(master);
    emu.interrupt(&master, "terminate", 2.0);
    emu.command_results(&[r#"{"result":"ok","step":"verify","guard":"released","node":"k8s-master"}"#]);
    let report = answer("interruption-handler", &emu, &[warning]).remove(0);
    let replacement = &report["replacement"];
    println!(
        "  {}: {} -> {}, private IP {} -> {} (same: {}), {} {}",
        text(&report["outcome"]),
        text(&report["old"]["id"]),
        text(&replacement["id"]),
        text(&report["old"]["private_ip"]),
        text(&replacement["private_ip"]),
        replacement["same_ip"],
        text(&replacement["instance_type"]),
        text(&replacement["market"]),
    );
    let state = &report["state"];
    println!(
        "  state: {} as of {} (volumes {}), guard {}",
        text(&state["source"]),
        text(&state["as_of"]),
        state["volumes"].as_array().map(|v| v.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
        text(&report["guard"]),
    );
    let new = text(&replacement["id"]).to_string();
    let new_root = emu.volume_at(&new, "/dev/xvda").await.or(emu.volume_at(&new, "/dev/sda1").await).unwrap();
    let survived = emu.volume(&new_root).await.unwrap();
    let marker = survived.tags().iter().find(|t| t.key() == Some("etcd-revision")).and_then(|t| t.value());
    println!(
        "  the replacement's root is {new_root}: the 09:12 state is {}",
        marker.map_or("LOST".into(), |m| format!("there ({m})"))
    );
    println!("  final backup {} ({})", text(&report["backup"]["name"]), text(&report["backup"]["outcome"]));
    timeline(&report);

    println!("\n== restore drill: {{\"action\": \"test-restore\", \"node\": \"k8s-master\"}}");
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
    emu.command_results(&[
        r#"{"result":"repaired","step":"verify","guard":"released","node":"k8s-master","quarantine":true}"#,
        r#"{"result":"ok","step":"health","readyz":true,"etcd":true,"node_ready":true}"#,
    ]);
    let drill = json!({"action": "test-restore", "node": "k8s-master", "keep": false});
    let report = answer("interruption-handler", &emu, &[drill]).remove(0);
    println!(
        "  {}: clone {} from {} on {} (the node keeps {}), fenced off it, repaired in quarantine, checked, removed",
        text(&report["outcome"]),
        text(&report["replacement"]["id"]),
        text(&report["state"]["image_id"]),
        text(&report["replacement"]["private_ip"]),
        text(&report["old"]["private_ip"]),
    );
    timeline(&report);

    println!("\n== lifeboat status (the CLI, reading the stack's outputs and AWS's tags)");
    stack::deploy(&emu, &stack::outputs(&emu));
    let status = std::process::Command::new(runtime::binary("lifeboat"))
        .arg("status")
        .env_clear()
        .envs(emu.operator_env())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&status.stdout).lines() {
        println!("  {line}");
    }
}
