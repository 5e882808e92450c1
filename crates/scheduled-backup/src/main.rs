//! scheduled-backup: on a schedule, one no-reboot AMI of every node, and each
//! node prepared so a relaunch keeps its interface and disks.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn, tracing};
use lifeboat_aws::AwsEc2;
use lifeboat_core::answer::Answer;
use lifeboat_core::{Config, backup, metrics};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let ec2 = AwsEc2::new(&lifeboat_aws::sdk_config().await);
    run(service_fn(async |event: LambdaEvent<Value>| {
        let now = chrono::Utc::now();
        let result = backup::handle(&ec2, &config, &event.payload, now).await;
        if let Some(report) = result.as_ref().map_or_else(|e| e.report(), Some) {
            metrics::emit(report, &report.metrics(now), "backup done");
        }
        Answer::of(result).emit(&event.payload, now).map_err(diagnostic)
    }))
    .await
}

/// A failure a retry may mend, as Lambda reports it: its kind (`errorType`)
/// and message.
fn diagnostic((error_type, error_message): (&'static str, String)) -> Diagnostic {
    Diagnostic { error_type: error_type.into(), error_message }
}
