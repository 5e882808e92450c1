//! The [`Ssm`] port over aws-sdk-ssm.

use crate::{cloud_error, to_chrono};
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{CommandInvocationStatus, InstanceInformationStringFilter, PingStatus};
use lifeboat_core::model::{CloudError, ErrorKind};
use lifeboat_core::ports::{CommandRequest, CommandState, Script, Ssm};

/// How commands reach the node.
#[derive(Debug, Clone)]
pub enum Documents {
    /// The stack's own SSM Command documents `<prefix>-repair` and
    /// `<prefix>-health`, whose parameters the stack restricts: the role may
    /// send nothing else.
    Stack(String),
    /// AWS-RunShellScript with the script embedded, when no documents are
    /// configured (`LIFEBOAT_SSM_DOCUMENTS` unset): the role must be allowed
    /// that document. Neither deployment uses it: the template and the
    /// Makefile's `deploy-lambda` both set `LIFEBOAT_SSM_DOCUMENTS` to the
    /// stack's name, and `deploy-lambda`'s comment gives the commands that
    /// create the two documents from the scripts
    /// (`infra/sync-repair-document.py --write-documents`).
    RunShellScript,
}

#[derive(Debug, Clone)]
pub struct AwsSsm {
    client: Client,
    documents: Documents,
}

impl AwsSsm {
    pub fn new(config: &aws_config::SdkConfig, documents: Documents) -> AwsSsm {
        AwsSsm { client: Client::new(config), documents }
    }
}

/// Wraps the script so AWS-RunShellScript runs it with bash whatever the
/// agent's default shell (reading it from stdin: `bash -s -- ARGS`). The
/// arguments are lifeboat's own (flags, node names checked by the core), each
/// single-quoted.
fn bash_command(script: Script, args: &[String]) -> String {
    let args: String = script
        .mode()
        .iter()
        .map(|a| a.to_string())
        .chain(args.iter().cloned())
        .map(|a| format!(" '{}'", a.replace('\'', "'\\''")))
        .collect();
    format!("bash -s --{args} <<'LIFEBOAT_SCRIPT'\n{}LIFEBOAT_SCRIPT", script.sent_text())
}

impl Ssm for AwsSsm {
    async fn is_online(&self, instance_id: &str) -> Result<bool, CloudError> {
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .values(instance_id)
            .build()
            .map_err(|e| CloudError::new("DescribeInstanceInformation", ErrorKind::Other, None, e.to_string()))?;
        let out = self
            .client
            .describe_instance_information()
            .filters(filter)
            .send()
            .await
            .map_err(|e| cloud_error("DescribeInstanceInformation", e))?;
        Ok(out
            .instance_information_list()
            .iter()
            .any(|i| i.instance_id() == Some(instance_id) && i.ping_status() == Some(&PingStatus::Online)))
    }

    async fn send_command(&self, request: &CommandRequest) -> Result<String, CloudError> {
        let timeout = request.timeout_seconds.to_string();
        let call = self.client.send_command().instance_ids(&request.instance_id).comment(&request.comment);
        let call = match &self.documents {
            Documents::Stack(prefix) => call
                .document_name(format!("{prefix}-{}", request.script.name()))
                // The newest version, whatever CloudFormation made the default.
                .document_version("$LATEST")
                .parameters("args", vec![request.args.join(" ")])
                .parameters("executionTimeout", vec![timeout]),
            Documents::RunShellScript => call
                .document_name("AWS-RunShellScript")
                .parameters("commands", vec![bash_command(request.script, &request.args)])
                .parameters("executionTimeout", vec![timeout]),
        };
        let out = call.send().await.map_err(|e| cloud_error("SendCommand", e))?;
        out.command()
            .and_then(|c| c.command_id())
            .map(str::to_string)
            .ok_or_else(|| crate::no_answer("SendCommand", "no command id returned"))
    }

    async fn command_state(&self, command_id: &str, instance_id: &str) -> Result<CommandState, CloudError> {
        let out = self
            .client
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance_id)
            .send()
            .await
            .map_err(|e| cloud_error("GetCommandInvocation", e))?;
        let output = out.standard_output_content().unwrap_or_default().to_string();
        Ok(match out.status() {
            Some(CommandInvocationStatus::Success) => CommandState::Success { output },
            None
            | Some(CommandInvocationStatus::Pending)
            | Some(CommandInvocationStatus::InProgress)
            | Some(CommandInvocationStatus::Delayed)
            | Some(CommandInvocationStatus::Cancelling) => CommandState::InProgress,
            Some(other) => CommandState::Failed {
                ssm_status: other.as_str().to_string(),
                exit_code: out.response_code(),
                output,
                error: out.standard_error_content().unwrap_or_default().to_string(),
            },
        })
    }

    async fn last_command(&self, instance_id: &str, comment: &str) -> Result<Option<String>, CloudError> {
        let pages = self
            .client
            .list_commands()
            .instance_id(instance_id)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| cloud_error("ListCommands", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.commands())
            .filter(|c| c.comment() == Some(comment))
            .max_by_key(|c| c.requested_date_time().and_then(to_chrono))
            .and_then(|c| c.command_id().map(str::to_string)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_check_is_the_repair_script_in_its_health_mode() {
        let args = ["k8s-master".to_string(), "--timeout".to_string(), "120".to_string()];
        let command = bash_command(Script::Health, &args);
        assert!(
            command.starts_with(
                "bash -s -- '--health' 'k8s-master' '--timeout' '120' <<'LIFEBOAT_SCRIPT'\n#!/usr/bin/env bash\n"
            ),
            "{command}"
        );
        assert!(command.contains("\nhealth() {\n"), "the repair script, sent without its comments");
        let repair = bash_command(Script::Repair, &["--timeout".to_string(), "480".to_string()]);
        assert!(repair.starts_with("bash -s -- '--timeout' '480' <<'LIFEBOAT_SCRIPT'\n"), "{repair}");
        assert!(repair.ends_with("\nLIFEBOAT_SCRIPT"));
    }
}
