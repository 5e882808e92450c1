//! lifeboat: the operator's command-line tool. Reads the deployed stack's
//! outputs, checks a node (preflight), shows what is protected (status),
//! invokes the functions (backup, drill, restore) and proves a recovery with
//! a real spot interruption (interrupt). Exit codes: 0 pass, 1 fail, 2 usage.

mod aws;
mod cli;
mod interrupt;
mod invoke;
mod output;
mod ports;
mod preflight;
mod render;
mod stack;
mod status;

use aws::Aws;
use clap::Parser;
use cli::{Cli, Command, Global};
use output::Progress;
use ports::{Alarm, Alarms, Consoles, Nodes, Stack, Stacks};
use serde::Serialize;
use std::process::ExitCode;

/// A command's result: printed, then the exit code.
struct Done {
    passed: bool,
    human: String,
    json: serde_json::Value,
}

impl Done {
    fn new(passed: bool, human: String, json: impl Serialize) -> Done {
        Done { passed, human, json: serde_json::to_value(json).unwrap_or_default() }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Interrupt { yes: false, node, .. } = &cli.command {
        eprintln!("lifeboat interrupt terminates {}'s instance for real: add --yes to go ahead", node.node);
        return ExitCode::from(2);
    }
    let sdk = match aws::with_credentials(aws::sdk_config(cli.global.region.clone()).await).await {
        Ok(sdk) => sdk,
        Err(message) => return failed(&cli.global, &message),
    };
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let cloud = Aws::new(&sdk);
    match run(&cloud, &cli.global, cli.command, &region).await {
        Ok(done) => {
            if cli.global.json {
                println!("{}", serde_json::to_string_pretty(&done.json).unwrap_or_default());
            } else {
                print!("{}", done.human);
            }
            if done.passed { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(message) => failed(&cli.global, &message),
    }
}

/// A command that could not run: its error, on stdout too with --json.
fn failed(global: &Global, message: &str) -> ExitCode {
    if global.json {
        println!("{}", serde_json::json!({"passed": false, "error": message}));
    }
    eprintln!("lifeboat: {message}");
    ExitCode::from(1)
}

async fn deployed_stack(cloud: &Aws, name: &str) -> Result<Stack, String> {
    cloud
        .stack(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| stack::StackError::Missing { stack: name.to_string() }.to_string())
}

async fn run(cloud: &Aws, global: &Global, command: Command, region: &str) -> Result<Done, String> {
    match command {
        Command::Preflight(n) => {
            let progress = Progress::start(&format!("checking {}", n.node));
            let facts = preflight::gather(cloud, &n.node, &global.stack, region).await;
            progress.finish();
            let checks = preflight::checks(&facts);
            let passed = checks.iter().all(|c| c.status != preflight::Status::Fail);
            let json = serde_json::json!({"node": n.node, "passed": passed, "checks": checks});
            Ok(Done::new(passed, render::preflight(&n.node, &checks), json))
        }
        Command::Status { node } => status(cloud, global, node.as_deref()).await,
        Command::Backup(n) => invoke(cloud, global, invoke::Action::Backup, &n.node).await,
        Command::Drill(n) => invoke(cloud, global, invoke::Action::Drill, &n.node).await,
        Command::Restore(n) => invoke(cloud, global, invoke::Action::Restore, &n.node).await,
        Command::Interrupt { node, timeout, .. } => {
            let stack = deployed_stack(cloud, &global.stack).await?;
            let timing =
                interrupt::Polling { timeout: std::time::Duration::from_secs(timeout * 60), ..Default::default() };
            let progress = Progress::start(&format!("starting the interruption of {}", node.node));
            let recovered = interrupt::run(cloud, &stack, &node.node, timing, &progress).await;
            progress.finish();
            let r = recovered.map_err(|e| e.to_string())?;
            Ok(Done::new(true, render::recovered(&r), &r))
        }
    }
}

async fn invoke(cloud: &Aws, global: &Global, action: invoke::Action, node: &str) -> Result<Done, String> {
    let stack = deployed_stack(cloud, &global.stack).await?;
    let progress = Progress::start(&format!("{} of {node}", action.what()));
    let outcome = invoke::run(cloud, &stack, action, node).await;
    progress.finish();
    let o = outcome?;
    Ok(Done::new(o.passed, render::invoked(&o), &o))
}

/// The stack's alarms: its resources of type AWS::CloudWatch::Alarm, so
/// exactly this stack's, whatever their names.
async fn stack_alarms(cloud: &Aws, stack: &Stack) -> Result<Vec<Alarm>, String> {
    let names = cloud.resources_of_type(&stack.name, "AWS::CloudWatch::Alarm").await.map_err(|e| e.to_string())?;
    cloud.alarms(&names).await.map_err(|e| e.to_string())
}

async fn status(cloud: &Aws, global: &Global, only: Option<&str>) -> Result<Done, String> {
    let progress = Progress::start("reading the nodes");
    let stack = cloud.stack(&global.stack).await.map_err(|e| e.to_string())?;
    let node_tag = stack.as_ref().map_or(lifeboat_core::config::DEFAULT_NODE_TAG.to_string(), Stack::node_tag);
    let instances = cloud.instances(&node_tag).await.map_err(|e| e.to_string())?;
    let images = cloud.images(&node_tag).await.map_err(|e| e.to_string())?;
    let alarms = match &stack {
        Some(s) => stack_alarms(cloud, s).await,
        None => Err(format!("no stack {} in this region", global.stack)),
    };
    let mut nodes = status::nodes(&node_tag, &instances, &images, only, chrono::Utc::now());
    // The boot guard's last decision, from each running instance's console.
    for n in nodes.iter_mut().filter(|n| n.state.as_deref() == Some("running")) {
        let Some(id) = n.instance.clone() else { continue };
        match cloud.console_output(&id).await {
            Ok(console) => n.boot_guard = console.as_deref().and_then(status::last_guard),
            Err(e) => n.boot_guard_error = Some(e.to_string()),
        }
    }
    progress.finish();
    let alarming = alarms.as_ref().is_ok_and(|a| a.iter().any(|a| a.state == "ALARM"));
    let held = nodes.iter().any(|n| n.boot_guard.as_ref().is_some_and(status::BootGuard::is_held));
    let passed = !nodes.is_empty() && nodes.iter().all(|n| n.state.as_deref() == Some("running")) && !alarming && !held;
    let stack_line = status::stack_line(&global.stack, stack.as_ref());
    let json = serde_json::json!({
        "stack": {"name": global.stack, "status": stack.as_ref().map(|s| &s.status), "outputs": stack.as_ref().map(|s| &s.outputs)},
        "passed": passed,
        "nodes": nodes,
        "alarms": alarms.as_ref().ok(),
        "alarms_error": alarms.as_ref().err(),
    });
    Ok(Done::new(passed, render::status(&stack_line, &nodes, &alarms), json))
}
