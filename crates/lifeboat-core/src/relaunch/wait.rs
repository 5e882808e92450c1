//! Waiting for AWS to reach a state: bounded, polled often enough that
//! lifeboat adds at most `max_poll` to the moment AWS gets there, and never
//! past the Lambda deadline (the retry resumes from what AWS shows).

use super::failure::Failure;
use crate::model::CloudError;
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// The repair script's budget for all its waits together, and the SSM
/// command's executionTimeout: the script stops itself before SSM does (its
/// watchdog stops a run 30 s past the budget; it then starts kubelet again
/// within 30 s, leaving the rest of the 120 s to the command it interrupted).
pub const REPAIR_TIMEOUT_SECONDS: u32 = 480;
pub const COMMAND_TIMEOUT_SECONDS: u32 = REPAIR_TIMEOUT_SECONDS + 120;
/// A drill's health check's budget for its retries (its own default).
pub const HEALTH_TIMEOUT_SECONDS: u32 = 120;

/// Time the handler keeps for itself before the Lambda deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// How long each wait may take, and how often it polls.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The old instance to be terminated (the warning gives two minutes).
    pub terminate: Duration,
    /// The kept interface and the preserved volumes to be released after
    /// the termination, and a refused address to be free again.
    pub release: Duration,
    pub running: Duration,
    /// A root-volume replacement task, and a drill's volume to be created.
    pub root_swap: Duration,
    /// The SSM agent to register (after the launch, and after the swap's reboot).
    pub online: Duration,
    /// A command to finish: its executionTimeout and a little more.
    pub command: Duration,
    pub first_poll: Duration,
    pub max_poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            terminate: Duration::from_secs(240),
            release: Duration::from_secs(90),
            running: Duration::from_secs(180),
            root_swap: Duration::from_secs(300),
            online: Duration::from_secs(300),
            command: Duration::from_secs(u64::from(COMMAND_TIMEOUT_SECONDS) + 30),
            first_poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(3),
        }
    }
}

/// Polls `probe` until it yields a value, for at most `limit` and never
/// past `deadline`: 1 s, then growing by half up to `max_poll`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    limit: Duration,
    timing: &Timing,
    deadline: Option<Instant>,
    mut probe: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, CloudError>>,
{
    let start = Instant::now();
    let limit = match deadline {
        Some(deadline) => limit.min(deadline.saturating_duration_since(start).saturating_sub(DEADLINE_MARGIN)),
        None => limit,
    };
    let mut delay = timing.first_poll;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        let elapsed = start.elapsed();
        if elapsed >= limit {
            return Err(Failure::Timeout { what: what.to_string(), seconds: elapsed.as_secs(), hint: String::new() });
        }
        sleep(delay.min(limit - elapsed)).await;
        delay = (delay * 3 / 2).min(timing.max_poll);
    }
}
