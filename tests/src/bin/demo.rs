//! `make demo`: the emulator, a tagged spot node "k8s-master", and lifeboat's
//! real binaries run against it, told as a person reads it.

use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, fixture};
use serde_json::Value;
use std::time::Duration;

fn show(title: &str, report: &Value) {
    println!("\n== {title}");
    println!("{}", serde_json::to_string_pretty(report).unwrap());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let master = emu.launch(&subnet, &[("lifeboat:node", "k8s-master"), ("Name", "k8s-master")]).await;
    let web = emu.launch(&subnet, &[("Name", "web")]).await;
    println!("emulator {} (account {})", emu.url, emu.account);
    println!("seeded: spot instance {master} tagged lifeboat:node=k8s-master, and {web} with no lifeboat tag");

    let event = fixture("scheduled-backup.json");
    let run = invoke("scheduled-backup", &emu.env(), &[event.clone(), event], Duration::from_secs(60));
    if run.invocations.len() != 2 {
        eprintln!("scheduled-backup did not answer:\n{}", run.stderr);
        std::process::exit(1);
    }
    for (i, invocation) in run.invocations.into_iter().enumerate() {
        let report = invocation.response();
        let title =
            if i == 0 { "scheduled-backup, Scheduled Event of 01:00" } else { "the same event delivered again" };
        show(title, &report);
        for node in report["nodes"].as_array().unwrap() {
            println!(
                "-> {} ({}): {} {}",
                node["node"].as_str().unwrap_or(""),
                node["instance"].as_str().unwrap_or(""),
                node["outcome"].as_str().unwrap_or(""),
                node["image_id"].as_str().or(node["reason"].as_str()).unwrap_or("")
            );
        }
    }
}
