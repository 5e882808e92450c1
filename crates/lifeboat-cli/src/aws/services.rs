//! CloudFormation, CloudWatch, Lambda and FIS: what only the tool calls.

use super::{Aws, cloud_error, to_chrono};
use crate::ports::{
    AccountConcurrency, Alarm, Alarms, Experiment, ExperimentTarget, Experiments, Functions, Invoked, Stack, Stacks,
};
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_types::Blob;
use lifeboat_core::model::{CloudError, ErrorKind};
use serde_json::Value;

impl Stacks for Aws {
    async fn stack(&self, name: &str) -> Result<Option<Stack>, CloudError> {
        let out = match self.cloudformation.describe_stacks().stack_name(name).send().await {
            Ok(out) => out,
            // CloudFormation answers ValidationError "Stack with id X does not exist".
            Err(e) => {
                let e = cloud_error("DescribeStacks", e);
                return if e.message.contains("does not exist") { Ok(None) } else { Err(e) };
            }
        };
        Ok(out.stacks().first().map(|s| Stack {
            name: s.stack_name().unwrap_or(name).to_string(),
            status: s.stack_status().map(|x| x.as_str().to_string()).unwrap_or_default(),
            outputs: s
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value().unwrap_or_default().to_string())))
                .collect(),
            parameters: s
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((p.parameter_key()?.to_string(), p.parameter_value().unwrap_or_default().to_string()))
                })
                .collect(),
        }))
    }

    async fn resources_of_type(&self, stack: &str, resource_type: &str) -> Result<Vec<String>, CloudError> {
        let out = self
            .cloudformation
            .describe_stack_resources()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| cloud_error("DescribeStackResources", e))?;
        Ok(out
            .stack_resources()
            .iter()
            .filter(|r| r.resource_type() == Some(resource_type))
            .filter_map(|r| r.physical_resource_id().map(str::to_string))
            .collect())
    }
}

impl Alarms for Aws {
    async fn alarms(&self, names: &[String]) -> Result<Vec<Alarm>, CloudError> {
        let mut alarms = Vec::new();
        // DescribeAlarms takes at most 100 names.
        for chunk in names.chunks(100) {
            let out = self
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| cloud_error("DescribeAlarms", e))?;
            alarms.extend(out.metric_alarms().iter().filter_map(|a| {
                Some(Alarm {
                    name: a.alarm_name()?.to_string(),
                    state: a.state_value().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    reason: a.state_reason().unwrap_or_default().to_string(),
                    since: a.state_updated_timestamp().and_then(to_chrono),
                })
            }));
            alarms.extend(out.composite_alarms().iter().filter_map(|a| {
                Some(Alarm {
                    name: a.alarm_name()?.to_string(),
                    state: a.state_value().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    reason: a.state_reason().unwrap_or_default().to_string(),
                    since: a.state_updated_timestamp().and_then(to_chrono),
                })
            }));
        }
        alarms.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(alarms)
    }
}

impl Functions for Aws {
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Invoked, CloudError> {
        let out = self
            .lambda
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| cloud_error("Invoke", e))?;
        let body = out.payload().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        let value: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        Ok(match out.function_error() {
            Some(kind) => Invoked::FunctionError {
                error_type: value["errorType"].as_str().unwrap_or(kind).to_string(),
                message: value["errorMessage"].as_str().map(str::to_string).unwrap_or_else(|| value.to_string()),
            },
            None => Invoked::Response(value),
        })
    }

    async fn account_concurrency(&self) -> Result<AccountConcurrency, CloudError> {
        let out = self.lambda.get_account_settings().send().await.map_err(|e| cloud_error("GetAccountSettings", e))?;
        let limit = out.account_limit().ok_or_else(|| {
            CloudError::new("GetAccountSettings", ErrorKind::Other, None, "no AccountLimit in the answer")
        })?;
        Ok(AccountConcurrency {
            limit: limit.concurrent_executions(),
            unreserved: limit.unreserved_concurrent_executions().unwrap_or(limit.concurrent_executions()),
        })
    }
}

fn experiment_of(e: &aws_sdk_fis::types::Experiment) -> Experiment {
    Experiment {
        id: e.id().unwrap_or_default().to_string(),
        status: e.state().and_then(|s| s.status()).map(|s| s.as_str().to_string()).unwrap_or_default(),
        reason: e.state().and_then(|s| s.reason()).map(str::to_string),
        start_time: e.start_time().and_then(to_chrono),
    }
}

impl Experiments for Aws {
    async fn template_targets(&self, template_id: &str) -> Result<Vec<ExperimentTarget>, CloudError> {
        let out = self
            .fis
            .get_experiment_template()
            .id(template_id)
            .send()
            .await
            .map_err(|e| cloud_error("GetExperimentTemplate", e))?;
        let targets = out.experiment_template().and_then(|t| t.targets());
        Ok(targets
            .into_iter()
            .flat_map(|m| m.values())
            .map(|t| ExperimentTarget {
                resource_type: t.resource_type().unwrap_or_default().to_string(),
                resource_arns: t.resource_arns().to_vec(),
                resource_tags: t.resource_tags().map(|m| m.clone().into_iter().collect()).unwrap_or_default(),
            })
            .collect())
    }

    async fn start(&self, template_id: &str, client_token: &str) -> Result<Experiment, CloudError> {
        let out = self
            .fis
            .start_experiment()
            .experiment_template_id(template_id)
            .client_token(client_token)
            .send()
            .await
            .map_err(|e| cloud_error("StartExperiment", e))?;
        out.experiment()
            .map(experiment_of)
            .ok_or_else(|| CloudError::new("StartExperiment", ErrorKind::Other, None, "no experiment in the answer"))
    }

    async fn experiment(&self, id: &str) -> Result<Experiment, CloudError> {
        let out = self.fis.get_experiment().id(id).send().await.map_err(|e| cloud_error("GetExperiment", e))?;
        out.experiment()
            .map(experiment_of)
            .ok_or_else(|| CloudError::new("GetExperiment", ErrorKind::Other, None, "no experiment in the answer"))
    }
}
