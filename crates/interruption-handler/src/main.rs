//! interruption-handler: on a spot interruption (or the node's instance going
//! away), relaunches the node on its own disks and private IP, exactly once,
//! and repairs it over SSM; also runs restore drills.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn, tracing};
use lifeboat_aws::{AwsEc2, AwsSns, AwsSsm, Documents};
use lifeboat_core::answer::Answer;
use lifeboat_core::relaunch::{self, Cloud, Timing};
use lifeboat_core::{Config, metrics};
use serde_json::Value;
use std::time::{Duration, SystemTime};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = lifeboat_aws::sdk_config().await;
    let documents = config.ssm_documents.clone().map_or(Documents::RunShellScript, Documents::Stack);
    let (ec2, ssm, sns) = (AwsEc2::new(&sdk), AwsSsm::new(&sdk, documents), AwsSns::new(&sdk));
    run(service_fn(async |event: LambdaEvent<Value>| {
        // The Lambda deadline on tokio's clock, so waits stop short of it.
        let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        let deadline = tokio::time::Instant::now() + left;
        let now = chrono::Utc::now();
        let cloud = Cloud { ec2: &ec2, ssm: &ssm, notifier: &sns };
        let result = relaunch::handle(cloud, &config, Timing::default(), &event.payload, now, Some(deadline)).await;
        if let Some(report) = result.as_ref().map_or_else(|e| e.report(), Some) {
            metrics::emit(report, &report.metrics(now), "interruption handled");
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
