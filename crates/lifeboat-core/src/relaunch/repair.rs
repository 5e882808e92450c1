//! Kubernetes on the replacement: wait for its SSM agent, run the repair
//! script (which also releases the boot guard), read its result line.

use super::failure::Failure;
use super::report::{CommandReport, Guard, Outcome, Source};
use super::wait::{COMMAND_TIMEOUT_SECONDS, REPAIR_TIMEOUT_SECONDS, wait_for};
use super::{Flow, RelaunchCloud};
use crate::model::ErrorKind;
use crate::ports::{CommandRequest, CommandState, Script, Ssm};
use serde_json::Value;

/// Why a script's command did not leave the node healthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotHealthy {
    #[error("the command has not finished")]
    Unfinished,
    /// The script's result line says `failed` (or another result), at a step.
    #[error("the script reported {result} at step {step}: {message}")]
    Reported { result: String, step: String, message: String },
    /// SSM says the command failed and the script wrote no result line.
    #[error("the command ended {ssm_status} (exit {exit_code}) without a result line")]
    NoResultLine { ssm_status: String, exit_code: i32 },
}

/// Whether a script left the node healthy, from its command's state. The
/// script's last JSON line decides (`ok` or `repaired`: healthy, `failed`:
/// not), since SSM calls every non-zero exit `Failed`, the "repaired" exit
/// code 3 included. Without a result line, SSM's own status decides.
pub fn repair_verdict(state: &CommandState) -> (Option<Value>, Result<(), NotHealthy>) {
    let output = match state {
        CommandState::InProgress => return (None, Err(NotHealthy::Unfinished)),
        CommandState::Success { output } | CommandState::Failed { output, .. } => output,
    };
    let line = output.lines().rev().find_map(|l| serde_json::from_str::<Value>(l.trim()).ok().filter(Value::is_object));
    let field = |name: &str| line.as_ref().and_then(|l| l[name].as_str()).unwrap_or("").to_string();
    let verdict = match (line.as_ref().and_then(|l| l["result"].as_str()), state) {
        (Some("ok" | "repaired"), _) => Ok(()),
        (Some(result), _) => {
            Err(NotHealthy::Reported { result: result.to_string(), step: field("step"), message: field("message") })
        }
        (None, CommandState::Success { .. }) => Ok(()),
        (None, CommandState::Failed { ssm_status, exit_code, .. }) => {
            Err(NotHealthy::NoResultLine { ssm_status: ssm_status.clone(), exit_code: *exit_code })
        }
        (None, CommandState::InProgress) => unreachable!("handled above"),
    };
    (line, verdict)
}

/// The repair's arguments for a node whose state came from `source`:
/// `--from-image` when it came from an image (the final one or a backup), so
/// the repair bumps etcd's revision, which went back with the image, and
/// every watcher relists. Never on the old volumes (nothing went back), nor
/// when the source is unknown (a replacement launched without its tag).
pub fn repair_args(source: Option<Source>) -> Vec<String> {
    let from_image = matches!(source, Some(Source::FinalImage | Source::Backup));
    let flag = from_image.then(|| "--from-image".to_string());
    flag.into_iter().chain(["--timeout".to_string(), REPAIR_TIMEOUT_SECONDS.to_string()]).collect()
}

/// What the repair says the boot guard did, and why (`guard`,
/// `guard_reason` of its result line).
fn guard_of(result: Option<&Value>) -> (Guard, String) {
    let reason = result.and_then(|r| r["guard_reason"].as_str()).unwrap_or_default().to_string();
    let guard = match result.and_then(|r| r["guard"].as_str()) {
        Some("self-released") => Guard::SelfReleased,
        Some("released") => Guard::Released,
        Some("held") => Guard::Held,
        _ => Guard::NotConfirmed,
    };
    (guard, reason)
}

/// The node's own times of its release, kubelet's start and the apiserver's
/// first ready answer (`released_at`, `kubelet_started_at`, `ready_at` of
/// the result line), as timeline steps and their details: the node's clock,
/// not the handler's (a step's `at_ms`).
fn node_times(result: Option<&Value>) -> Vec<(&'static str, String)> {
    let Some(result) = result else { return Vec::new() };
    [
        ("node-released", "released_at", "kubelet released"),
        ("node-kubelet-started", "kubelet_started_at", "kubelet started"),
        ("node-ready", "ready_at", "the apiserver answered ready"),
    ]
    .into_iter()
    .filter_map(|(step, field, what)| {
        let at = result[field].as_str().filter(|at| !at.is_empty())?;
        Some((step, format!("{what} at {at} by the node's clock")))
    })
    .collect()
}

impl<E: RelaunchCloud, S: Ssm> Flow<'_, E, S> {
    /// Waits for the instance's SSM agent, after the launch or after the
    /// reboot of a root swap.
    pub(super) async fn wait_online(&mut self, instance_id: &str) -> Result<(), Failure> {
        wait_for("the SSM agent to come online", self.timing.online, &self.timing, self.deadline, || async {
            Ok(self.ssm.is_online(instance_id).await?.then_some(()))
        })
        .await?;
        self.step("ssm-online", format!("{instance_id} is a managed node"));
        Ok(())
    }

    /// Sends the repair (unless an earlier invocation did) and waits for its
    /// result.
    pub(super) async fn repair(&mut self, replacement: &str) -> Result<(), Failure> {
        let node = self.report.node.clone().unwrap_or_default();
        let node = crate::node::NodeName::new(&node).map_err(|e| Failure::Repair(e.to_string()))?;
        let comment = node.comment("repair");
        let previous = match self.ssm.last_command(replacement, &comment).await? {
            Some(id) => Some((self.command_state(&id, replacement).await?, id)),
            None => None,
        };
        let (command_id, state) = match previous {
            Some((CommandState::InProgress, id)) => {
                self.step("command-found", format!("{id} is still running"));
                let state = self.command_result(&id, replacement).await?;
                (id, state)
            }
            Some((state, id)) if repair_verdict(&state).1.is_ok() => {
                self.report.outcome = Outcome::AlreadyDone;
                let done = format!("{id} succeeded before: nothing left to do");
                return self.finish_repair(id, state, done);
            }
            _ => {
                let args = repair_args(self.report.state.as_ref().map(|s| s.source));
                self.run_script(replacement, Script::Repair, &comment, args).await?
            }
        };
        let done = format!("{command_id} succeeded");
        self.finish_repair(command_id, state, done)
    }

    /// Reads the repair's result: healthy, and whether it released the guard.
    pub(super) fn finish_repair(
        &mut self,
        command_id: String,
        state: CommandState,
        done: String,
    ) -> Result<(), Failure> {
        let (result, verdict) = repair_verdict(&state);
        let (guard, reason) = guard_of(result.as_ref());
        let times = node_times(result.as_ref());
        let why = |fallback: &str| if reason.is_empty() { fallback.to_string() } else { reason.clone() };
        self.report.command = Some(CommandReport { command_id: command_id.clone(), state, result });
        verdict.map_err(|e| Failure::Repair(format!("{e} (command {command_id})")))?;
        self.step("repaired", done);
        self.report.guard = Some(guard);
        match guard {
            Guard::SelfReleased => self.step("self-released", why("the guard released kubelet at boot")),
            Guard::Released => self.step("released", why("the repair released kubelet")),
            Guard::Held => self.step("guard-held", why("kubelet is still held")),
            Guard::NotConfirmed => {
                self.step("guard-not-confirmed", why("no boot guard was confirmed: did cloud-init run?"))
            }
        }
        for (step, detail) in times {
            self.step(step, detail);
        }
        Ok(())
    }

    /// Runs a script over SSM and waits for its result.
    pub(super) async fn run_script(
        &mut self,
        instance_id: &str,
        script: Script,
        comment: &str,
        args: Vec<String>,
    ) -> Result<(String, CommandState), Failure> {
        let request = CommandRequest {
            instance_id: instance_id.to_string(),
            script,
            args,
            comment: comment.to_string(),
            timeout_seconds: COMMAND_TIMEOUT_SECONDS,
        };
        let id = self.ssm.send_command(&request).await?;
        self.step("command-sent", format!("{comment}: {id}"));
        let state = self.command_result(&id, instance_id).await?;
        Ok((id, state))
    }

    /// A command's state; one SSM does not show yet is in progress.
    async fn command_state(&self, command_id: &str, instance_id: &str) -> Result<CommandState, Failure> {
        match self.ssm.command_state(command_id, instance_id).await {
            Err(e) if e.is(ErrorKind::NotYetVisible) => Ok(CommandState::InProgress),
            other => Ok(other?),
        }
    }

    async fn command_result(&self, command_id: &str, instance_id: &str) -> Result<CommandState, Failure> {
        wait_for("the command to finish", self.timing.command, &self.timing, self.deadline, || async {
            match self.ssm.command_state(command_id, instance_id).await {
                Ok(CommandState::InProgress) => Ok(None),
                // Visible a moment after SendCommand returns.
                Err(e) if e.is(ErrorKind::NotYetVisible) => Ok(None),
                other => other.map(Some),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_state_from_an_image_asks_the_repair_to_bump_etcds_revision() {
        let timeout = ["--timeout".to_string(), REPAIR_TIMEOUT_SECONDS.to_string()];
        assert_eq!(repair_args(Some(Source::OldVolumes)), timeout);
        assert_eq!(repair_args(None), timeout);
        for source in [Source::FinalImage, Source::Backup] {
            assert_eq!(repair_args(Some(source)), [&["--from-image".to_string()][..], &timeout].concat());
        }
    }

    #[test]
    fn the_guard_is_what_the_node_says_it_did_with_its_reason() {
        let line =
            |guard: &str| serde_json::json!({"result": "ok", "guard": guard, "guard_reason": "booted from vol-1"});
        assert_eq!(guard_of(Some(&line("self-released"))), (Guard::SelfReleased, "booted from vol-1".into()));
        assert_eq!(guard_of(Some(&line("released"))).0, Guard::Released);
        assert_eq!(guard_of(Some(&line("held"))).0, Guard::Held);
        assert_eq!(guard_of(Some(&line("not-confirmed"))).0, Guard::NotConfirmed);
        // An older repair said "absent"; anything unknown is not a confirmation.
        assert_eq!(guard_of(Some(&line("absent"))).0, Guard::NotConfirmed);
        assert_eq!(guard_of(None), (Guard::NotConfirmed, String::new()));
    }

    #[test]
    fn the_nodes_own_times_become_steps_with_the_node_time_in_the_detail() {
        let line = serde_json::json!({"result": "ok", "guard": "self-released",
            "released_at": "2026-11-26T01:04:12Z", "kubelet_started_at": "2026-11-26T01:04:13Z",
            "ready_at": "2026-11-26T01:04:40Z"});
        assert_eq!(
            node_times(Some(&line)),
            vec![
                ("node-released", "kubelet released at 2026-11-26T01:04:12Z by the node's clock".to_string()),
                ("node-kubelet-started", "kubelet started at 2026-11-26T01:04:13Z by the node's clock".to_string()),
                ("node-ready", "the apiserver answered ready at 2026-11-26T01:04:40Z by the node's clock".to_string()),
            ]
        );
        // An unknown time is left out of the line (an older repair has none).
        let line = serde_json::json!({"result": "ok", "kubelet_started_at": "2026-11-26T01:04:13Z"});
        assert_eq!(node_times(Some(&line)).iter().map(|(s, _)| *s).collect::<Vec<_>>(), ["node-kubelet-started"]);
        assert!(node_times(None).is_empty());
    }
}
