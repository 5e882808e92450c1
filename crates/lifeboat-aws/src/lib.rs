//! lifeboat's ports implemented with the AWS SDK for Rust. The only crate that
//! knows the SDK: it translates between SDK types and the core's model, and
//! makes no decision of its own, except one translation: which AWS error
//! codes mean which [`ErrorKind`].

mod ec2;
mod launch;
mod sns;
mod ssm;

pub use ec2::AwsEc2;
pub use sns::AwsSns;
pub use ssm::{AwsSsm, Documents};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use lifeboat_core::model::{CloudError, ErrorKind, Refusal};
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

/// RunInstances errors that mean "not this type or market now": the launch
/// moves on to the next choice instead of failing (EC2 API reference,
/// "Error codes for the Amazon EC2 API").
const NO_CAPACITY: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "Unsupported",
    "InsufficientFreeAddressesInSubnet",
    "VcpuLimitExceeded",
    "InstanceLimitExceeded",
];

/// Codes for "the caller may not": EC2's common client errors
/// `UnauthorizedOperation` and `AuthFailure` ("Error codes for the Amazon EC2
/// API", errors-overview.html), the common `AccessDeniedException` and
/// `NotAuthorized` of the SSM and SNS API references ("Common Error Types",
/// CommonErrors.html), SNS's own `AuthorizationError` (API_Publish.html), and
/// `AccessDenied`, the query protocol's spelling (IAM, STS).
const AUTHORIZATION: &[&str] = &[
    "UnauthorizedOperation",
    "AuthFailure",
    "AccessDenied",
    "AccessDeniedException",
    "NotAuthorized",
    "AuthorizationError",
];

/// Codes for "this request is not valid": EC2's common client errors
/// `InvalidParameter`, `InvalidParameterValue`, `InvalidParameterCombination`,
/// `InvalidParameterDependency`, `MissingParameter`, `UnknownParameter` and
/// `ValidationError`, `UnsupportedOperation` ("The specified request
/// includes an unsupported operation"), its `InvalidVolume.ZoneMismatch` and
/// `BootForVolumeTypeUnsupported` (errors-overview.html); the common
/// `InvalidParameterValue`, `InvalidParameterCombination`, `MissingParameter`
/// and `ValidationError` of SSM and SNS (CommonErrors.html), SSM's
/// `ValidationException` and SendCommand's `InvalidParameters`
/// (API_SendCommand.html), SNS's `InvalidParameter` (API_Publish.html).
const VALIDATION: &[&str] = &[
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidParameterDependency",
    "InvalidParameters",
    "MissingParameter",
    "UnknownParameter",
    "UnsupportedOperation",
    "ValidationError",
    "ValidationException",
    "InvalidVolume.ZoneMismatch",
    "BootForVolumeTypeUnsupported",
];

/// Codes for "not in a state this request accepts": EC2's `IncorrectState`,
/// `IncorrectInstanceState` and `InvalidAMIID.Unavailable` ("not in a state
/// from which you can launch an instance", errors-overview.html).
const STATE: &[&str] = &["IncorrectState", "IncorrectInstanceState", "InvalidAMIID.Unavailable"];

/// What an AWS error code means to lifeboat.
pub fn kind_of(code: &str) -> ErrorKind {
    match code {
        _ if NO_CAPACITY.contains(&code) => ErrorKind::NoCapacity,
        _ if AUTHORIZATION.contains(&code) => ErrorKind::Refused(Refusal::Authorization),
        _ if VALIDATION.contains(&code) => ErrorKind::Refused(Refusal::Validation),
        _ if STATE.contains(&code) => ErrorKind::Refused(Refusal::State),
        // A name or idempotency token in use (RunInstances answers
        // IdempotentInstanceTerminated when the token's instance is gone).
        "InvalidAMIName.Duplicate" | "IdempotentParameterMismatch" | "IdempotentInstanceTerminated" => {
            ErrorKind::AlreadyExists
        }
        "InvalidIPAddress.InUse" | "InvalidNetworkInterface.InUse" | "InvalidSnapshot.InUse" | "VolumeInUse" => {
            ErrorKind::InUse
        }
        // GetCommandInvocation, a moment after SendCommand.
        "InvocationDoesNotExist" => ErrorKind::NotYetVisible,
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "TooManyRequestsException" => {
            ErrorKind::Throttled
        }
        // EC2's answer to a DryRun the caller may make (errors-overview.html).
        "DryRunOperation" => ErrorKind::DryRunPassed,
        _ if code.ends_with(".NotFound") || code.ends_with("NotFoundException") => ErrorKind::NotFound,
        _ => ErrorKind::Other,
    }
}

/// Turns an SDK error into the core's [`CloudError`]: the AWS error code and
/// its kind when the service answered, the whole error chain otherwise.
pub fn cloud_error<E, R>(operation: &str, err: aws_sdk_ec2::error::SdkError<E, R>) -> CloudError
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(service) => {
            let kind = service.code().map(kind_of).unwrap_or(ErrorKind::Other);
            CloudError::new(operation, kind, service.code(), service.message().unwrap_or_default())
        }
        None => CloudError::new(
            operation,
            ErrorKind::Other,
            None,
            aws_sdk_ec2::error::DisplayErrorContext(&err).to_string(),
        ),
    }
}

/// A call that succeeded without the answer it must carry.
pub(crate) fn no_answer(operation: &str, message: &str) -> CloudError {
    CloudError::new(operation, ErrorKind::Other, None, message)
}

/// The SDK's timestamps as chrono's.
pub fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_error_codes_map_to_the_kinds_the_core_decides_on() {
        for (code, kind) in [
            ("InsufficientInstanceCapacity", ErrorKind::NoCapacity),
            ("InvalidAMIName.Duplicate", ErrorKind::AlreadyExists),
            ("IdempotentParameterMismatch", ErrorKind::AlreadyExists),
            ("InvalidIPAddress.InUse", ErrorKind::InUse),
            ("InvalidSnapshot.InUse", ErrorKind::InUse),
            ("InvocationDoesNotExist", ErrorKind::NotYetVisible),
            ("InvalidInstanceID.NotFound", ErrorKind::NotFound),
            ("InvalidVolume.NotFound", ErrorKind::NotFound),
            ("RequestLimitExceeded", ErrorKind::Throttled),
            ("DryRunOperation", ErrorKind::DryRunPassed),
            ("UnauthorizedOperation", ErrorKind::Refused(Refusal::Authorization)),
            ("AuthFailure", ErrorKind::Refused(Refusal::Authorization)),
            ("AccessDenied", ErrorKind::Refused(Refusal::Authorization)),
            ("AccessDeniedException", ErrorKind::Refused(Refusal::Authorization)),
            ("AuthorizationError", ErrorKind::Refused(Refusal::Authorization)),
            ("InvalidParameterValue", ErrorKind::Refused(Refusal::Validation)),
            ("InvalidParameter", ErrorKind::Refused(Refusal::Validation)),
            ("InvalidParameterCombination", ErrorKind::Refused(Refusal::Validation)),
            ("MissingParameter", ErrorKind::Refused(Refusal::Validation)),
            ("ValidationException", ErrorKind::Refused(Refusal::Validation)),
            ("ValidationError", ErrorKind::Refused(Refusal::Validation)),
            ("InvalidParameters", ErrorKind::Refused(Refusal::Validation)),
            ("InvalidVolume.ZoneMismatch", ErrorKind::Refused(Refusal::Validation)),
            ("UnsupportedOperation", ErrorKind::Refused(Refusal::Validation)),
            ("BootForVolumeTypeUnsupported", ErrorKind::Refused(Refusal::Validation)),
            ("IncorrectState", ErrorKind::Refused(Refusal::State)),
            ("IncorrectInstanceState", ErrorKind::Refused(Refusal::State)),
            ("InvalidAMIID.Unavailable", ErrorKind::Refused(Refusal::State)),
            // SSM: the instance is unknown, not managed or not online; no
            // decision rests on which.
            ("InvalidInstanceId", ErrorKind::Other),
            ("InternalError", ErrorKind::Other),
        ] {
            assert_eq!(kind_of(code), kind, "{code}");
        }
    }
}
