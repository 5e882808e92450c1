//! lifeboat's ports implemented with the AWS SDK for Rust. The only crate that
//! knows the SDK: it translates between SDK types and the core's model, and
//! makes no decision of its own.

mod ec2;
mod sns;
mod ssm;

pub use ec2::AwsEc2;
pub use sns::AwsSns;
pub use ssm::AwsSsm;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use lifeboat_core::model::CloudError;
use std::time::Duration;

/// The shared SDK configuration, from the standard AWS environment
/// (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`, ...). Throttling and
/// transient errors are retried by the SDK's standard retry with exponential
/// backoff and jitter; `AWS_MAX_ATTEMPTS` overrides the attempts.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config()).load().await
}

/// Standard retry, 8 attempts: enough to ride out a throttled burst of a few
/// hundred calls, short of the Lambda timeout.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(10))
}

/// Turns an SDK error into the core's [`CloudError`]: the AWS error code when
/// the service answered, the whole error chain otherwise.
pub(crate) fn cloud_error<E, R>(operation: &str, err: aws_sdk_ec2::error::SdkError<E, R>) -> CloudError
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(service) => CloudError::new(operation, service.code(), service.message().unwrap_or_default()),
        None => CloudError::new(operation, None, aws_sdk_ec2::error::DisplayErrorContext(&err).to_string()),
    }
}

/// The SDK's timestamps as chrono's.
pub(crate) fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}
