//! The tool's ports over the AWS SDK. The node, its images and volumes, its
//! instances and SSM go through lifeboat-aws's adapters; what only the tool
//! needs (the stack, alarms, Lambda, FIS, EC2's network and spot reads, and
//! the KMS keys of the node's volumes) is here, translated and nothing more.

mod ec2;
mod kms;
mod services;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use lifeboat_aws::{AwsEc2, AwsSsm, Documents};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// One client per service, from one SDK configuration.
pub struct Aws {
    pub(crate) ec2: AwsEc2,
    pub(crate) ec2_client: aws_sdk_ec2::Client,
    pub(crate) ssm: AwsSsm,
    pub(crate) ssm_client: aws_sdk_ssm::Client,
    pub(crate) cloudformation: aws_sdk_cloudformation::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(crate) lambda: aws_sdk_lambda::Client,
    pub(crate) fis: aws_sdk_fis::Client,
    pub(crate) kms: aws_sdk_kms::Client,
}

/// interruption-handler may run for 15 minutes: the invocation waits that
/// long for its answer, plus a margin.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(16 * 60);

impl Aws {
    pub fn new(sdk: &SdkConfig) -> Aws {
        // One attempt: a retried RequestResponse invocation whose first
        // attempt timed out on the wire would run a drill or a restore twice.
        let lambda = aws_sdk_lambda::config::Builder::from(sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(INVOKE_TIMEOUT)
                    .operation_attempt_timeout(INVOKE_TIMEOUT)
                    .operation_timeout(INVOKE_TIMEOUT)
                    .build(),
            )
            .build();
        let ec2_client = aws_sdk_ec2::Client::new(sdk);
        Aws {
            ec2: AwsEc2::from_client(ec2_client.clone()),
            ec2_client,
            ssm: AwsSsm::new(sdk, Documents::RunShellScript),
            ssm_client: aws_sdk_ssm::Client::new(sdk),
            cloudformation: aws_sdk_cloudformation::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::from_conf(lambda),
            fis: aws_sdk_fis::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
        }
    }
}

/// The SDK configuration from the standard AWS environment, in `region` if
/// given, with lifeboat's retries.
pub async fn sdk_config(region: Option<String>) -> SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(lifeboat_aws::retry_config());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}

/// What the tool says on a machine without credentials, in place of the
/// SDK's account of every provider it tried, for every call.
pub const NO_CREDENTIALS: &str = "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                                  (or run on an instance with a role)";

/// The configuration with its credentials resolved before any call, or
/// [`NO_CREDENTIALS`] when the default chain finds none (its
/// `CredentialsNotLoaded`: the SDK would report it as each call's dispatch
/// failure, after the command's progress). The credentials found serve the
/// first call, so the chain runs no more often than it did; any other
/// failure of the chain is left to the SDK to report, as before.
pub async fn with_credentials(sdk: SdkConfig) -> Result<SdkConfig, String> {
    let Some(chain) = sdk.credentials_provider() else { return Ok(sdk) };
    match chain.provide_credentials().await {
        Ok(credentials) => {
            let primed = Primed { first: Mutex::new(Some(credentials)), chain };
            Ok(sdk.to_builder().credentials_provider(SharedCredentialsProvider::new(primed)).build())
        }
        Err(CredentialsError::CredentialsNotLoaded(_)) => Err(NO_CREDENTIALS.to_string()),
        Err(_) => Ok(sdk),
    }
}

/// The chain, whose first answer was already had.
#[derive(Debug)]
struct Primed {
    first: Mutex<Option<Credentials>>,
    chain: SharedCredentialsProvider,
}

impl ProvideCredentials for Primed {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        match self.first.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(credentials) => future::ProvideCredentials::ready(Ok(credentials)),
            None => self.chain.provide_credentials(),
        }
    }

    fn fallback_on_interrupt(&self) -> Option<Credentials> {
        self.chain.fallback_on_interrupt()
    }
}

// The functions' translation of SDK errors (kinds from AWS codes) and
// times: every SDK shares the error type.
pub(crate) use lifeboat_aws::{cloud_error, to_chrono};
