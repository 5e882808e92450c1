//! The SSM and SNS ports of the in-memory cloud.

use super::{Command, MemoryCloud, Notification, delays, error};
use crate::model::{CloudError, ErrorKind, Refusal};
use crate::ports::{CommandRequest, CommandState, Notifier, Ssm};
use std::time::Duration;
use tokio::time::Instant;

/// SSM's limit on a command's comment.
const MAX_COMMENT: usize = 100;

impl Ssm for MemoryCloud {
    async fn is_online(&self, instance_id: &str) -> Result<bool, CloudError> {
        Ok(self.call("DescribeInstanceInformation")?.online(instance_id))
    }

    async fn send_command(&self, request: &CommandRequest) -> Result<String, CloudError> {
        let mut s = self.call("SendCommand")?;
        if request.comment.chars().count() > MAX_COMMENT {
            let refused = ErrorKind::Refused(Refusal::Validation);
            return Err(error("SendCommand", refused, "ValidationException", "comment longer than 100"));
        }
        if !s.online(&request.instance_id) {
            return Err(error("SendCommand", ErrorKind::Other, "InvalidInstanceId", &request.instance_id));
        }
        let id = s.id("cmd");
        // A quarantined repair reports the profile whose credentials the
        // instance's metadata serves: the one it was launched with.
        let isolation =
            match s.instances.get(&request.instance_id).and_then(|i| i.instance.instance_profile_arn.clone()) {
                Some(arn) if request.args.iter().any(|a| a == "--quarantine") => {
                    format!(",\"isolation\":{{\"live_unreachable\":[],\"instance_profile\":\"{arn}\"}}")
                }
                _ => String::new(),
            };
        let result = s.command_results.pop_front().unwrap_or(CommandState::Success {
            output: format!("{{\"result\":\"ok\",\"step\":\"verify\",\"guard\":\"released\"{isolation}}}"),
        });
        let now = Instant::now();
        let runs = s.command_duration.unwrap_or(delays::COMMAND);
        s.commands.push(Command {
            id: id.clone(),
            instance_id: request.instance_id.clone(),
            comment: request.comment.clone(),
            script: request.script,
            args: request.args.clone(),
            sent_at: now,
            ready_at: now + runs,
            timeout: Duration::from_secs(u64::from(request.timeout_seconds)),
            result,
        });
        Ok(id)
    }

    /// `NotYetVisible` for a moment after SendCommand; a command that runs
    /// past its executionTimeout ends `TimedOut` with no output.
    async fn command_state(&self, command_id: &str, instance_id: &str) -> Result<CommandState, CloudError> {
        let s = self.call("GetCommandInvocation")?;
        let now = Instant::now();
        let invisible =
            || error("GetCommandInvocation", ErrorKind::NotYetVisible, "InvocationDoesNotExist", command_id);
        match s.commands.iter().find(|c| c.id == command_id && c.instance_id == instance_id) {
            None => Err(invisible()),
            Some(c) if now < c.sent_at + delays::INVOCATION_VISIBLE => Err(invisible()),
            Some(c) if c.ready_at - c.sent_at > c.timeout && now >= c.sent_at + c.timeout => Ok(CommandState::Failed {
                ssm_status: "TimedOut".into(),
                exit_code: -1,
                output: String::new(),
                error: String::new(),
            }),
            Some(c) if now < c.ready_at => Ok(CommandState::InProgress),
            Some(c) => Ok(c.result.clone()),
        }
    }

    async fn last_command(&self, instance_id: &str, comment: &str) -> Result<Option<String>, CloudError> {
        let s = self.call("ListCommands")?;
        Ok(s.commands.iter().rev().find(|c| c.instance_id == instance_id && c.comment == comment).map(|c| c.id.clone()))
    }
}

impl Notifier for MemoryCloud {
    async fn publish(&self, topic_arn: &str, subject: &str, message: &str) -> Result<(), CloudError> {
        let mut s = self.call("Publish")?;
        s.notifications.push(Notification {
            topic_arn: topic_arn.into(),
            subject: subject.into(),
            message: message.into(),
        });
        Ok(())
    }
}
