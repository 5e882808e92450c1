//! The [`Notifier`] port over aws-sdk-sns.

use crate::cloud_error;
use aws_sdk_sns::Client;
use lifeboat_core::model::CloudError;
use lifeboat_core::ports::Notifier;

#[derive(Debug, Clone)]
pub struct AwsSns {
    client: Client,
}

impl AwsSns {
    pub fn new(config: &aws_config::SdkConfig) -> AwsSns {
        AwsSns { client: Client::new(config) }
    }
}

impl Notifier for AwsSns {
    async fn publish(&self, topic_arn: &str, subject: &str, message: &str) -> Result<(), CloudError> {
        self.client
            .publish()
            .topic_arn(topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map_err(|e| cloud_error("Publish", e))?;
        Ok(())
    }
}
