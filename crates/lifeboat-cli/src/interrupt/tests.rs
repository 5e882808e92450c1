use super::*;
use crate::ports::Experiment;
use lifeboat_core::model::{CloudError, Image, Tags};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

const TAG: &str = "lifeboat:node";

/// AWS as a recovery unfolds, poll by poll (one poll every 5 s from the
/// warning): `None` means it never happens.
struct Script {
    terminated_at: Option<u32>,
    replacement_at: Option<u32>,
    root_at: Option<u32>,
    repaired_at: Option<u32>,
    repair_output: &'static str,
    experiment_status: &'static str,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            terminated_at: Some(25),
            replacement_at: Some(30),
            root_at: Some(40),
            repaired_at: Some(50),
            repair_output: "...\n{\"result\":\"repaired\",\"step\":\"verify\"}",
            experiment_status: "running",
        }
    }
}

struct FakeAws {
    script: Script,
    on_demand: bool,
    targets: Vec<ExperimentTarget>,
    polls: AtomicU32,
    started: Mutex<Vec<(String, String)>>,
}

fn node(id: &str, spot: bool) -> Instance {
    Instance {
        id: id.into(),
        state: InstanceState::Running,
        tags: Tags::from([(TAG.into(), "k8s-master".into())]),
        spot,
        ..Instance::default()
    }
}

fn by_tag() -> Vec<ExperimentTarget> {
    vec![ExperimentTarget {
        resource_type: SPOT_TARGET.into(),
        resource_arns: vec![],
        resource_tags: BTreeMap::from([(TAG.to_string(), "k8s-master".to_string())]),
    }]
}

fn fake(script: Script) -> FakeAws {
    FakeAws { script, on_demand: false, targets: by_tag(), polls: AtomicU32::new(0), started: Mutex::new(vec![]) }
}

impl FakeAws {
    fn reached(&self, at: Option<u32>) -> bool {
        at.is_some_and(|at| self.polls.load(Ordering::SeqCst) >= at)
    }

    fn replacement_instance(&self) -> Instance {
        let mut r = node("i-new", true);
        r.tags.insert(tags::REPLACES.into(), "i-old".into());
        r.tags.insert(tags::STATE_SOURCE.into(), "old-volumes".into());
        r.tags.insert(tags::STATE_AS_OF.into(), "2026-11-30T12:02:00Z".into());
        r
    }
}

impl Nodes for FakeAws {
    async fn instances(&self, _: &str) -> Result<Vec<Instance>, CloudError> {
        Ok(vec![node("i-old", !self.on_demand)])
    }
    async fn images(&self, _: &str) -> Result<Vec<Image>, CloudError> {
        Ok(vec![])
    }
}

impl Experiments for FakeAws {
    async fn template_targets(&self, _: &str) -> Result<Vec<ExperimentTarget>, CloudError> {
        Ok(self.targets.clone())
    }
    async fn start(&self, template: &str, token: &str) -> Result<Experiment, CloudError> {
        self.started.lock().unwrap().push((template.into(), token.into()));
        Ok(Experiment { id: "EXP1".into(), status: "initiating".into(), reason: None, start_time: None })
    }
    async fn experiment(&self, id: &str) -> Result<Experiment, CloudError> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let reason = Some("Target resolution failed".to_string());
        Ok(Experiment { id: id.into(), status: self.script.experiment_status.into(), reason, start_time: None })
    }
}

impl Recovery for FakeAws {
    async fn replacement(&self, _: &str) -> Result<Option<Instance>, CloudError> {
        Ok(self.reached(self.script.replacement_at).then(|| self.replacement_instance()))
    }
    async fn instance(&self, id: &str) -> Result<Option<Instance>, CloudError> {
        Ok(match id {
            "i-old" if self.reached(self.script.terminated_at) => None,
            "i-old" => Some(node("i-old", true)),
            _ => Some(self.replacement_instance()),
        })
    }
    async fn root_task(&self, _: &str) -> Result<Option<RootTaskState>, CloudError> {
        Ok(Some(if self.reached(self.script.root_at) { RootTaskState::Succeeded } else { RootTaskState::InProgress }))
    }
    async fn command(&self, _: &str, comment: &str) -> Result<Option<CommandState>, CloudError> {
        assert_eq!(comment, "lifeboat repair k8s-master");
        Ok(match self.script.repaired_at {
            Some(at) if self.polls.load(Ordering::SeqCst) >= at => {
                let output = self.script.repair_output.to_string();
                if output.contains("\"failed\"") {
                    Some(CommandState::Failed {
                        ssm_status: "Failed".into(),
                        exit_code: 17,
                        output,
                        error: String::new(),
                    })
                } else {
                    Some(CommandState::Success { output })
                }
            }
            Some(at) if self.polls.load(Ordering::SeqCst) + 5 >= at => Some(CommandState::InProgress),
            _ => None,
        })
    }
}

fn stack() -> Stack {
    Stack {
        name: "lifeboat".into(),
        status: "CREATE_COMPLETE".into(),
        outputs: [(stack::EXPERIMENT_TEMPLATE.to_string(), "EXT1".to_string())].into(),
        parameters: Default::default(),
    }
}

async fn interrupt(aws: &FakeAws) -> Result<Recovered, InterruptError> {
    run(aws, &stack(), "k8s-master", Polling::default(), &Progress::hidden()).await
}

#[tokio::test(start_paused = true)]
async fn the_recovery_is_timed_from_the_warning_to_the_repairs_success() {
    let aws = fake(Script::default());
    let r = interrupt(&aws).await.unwrap();
    assert_eq!(aws.started.lock().unwrap().as_slice(), [("EXT1".to_string(), "lifeboat-interrupt-i-old".to_string())]);
    assert_eq!(r.seconds_to_healthy, 245.0, "the 50th poll, 49 intervals of 5 s after the warning");
    assert_eq!((r.old.as_str(), r.replacement.as_str()), ("i-old", "i-new"));
    assert_eq!(r.result.as_deref(), Some("repaired"));
    assert_eq!(r.state_source.as_deref(), Some("old-volumes"));
    assert_eq!(r.state_as_of.as_deref(), Some("2026-11-30T12:02:00Z"));
    let steps: Vec<(&str, f64)> = r.milestones.iter().map(|m| (m.step, m.at_seconds)).collect();
    assert_eq!(
        steps,
        [("warning", 0.0), ("terminated", 120.0), ("launched", 145.0), ("root-volume", 195.0), ("healthy", 245.0)]
    );
}

#[tokio::test(start_paused = true)]
async fn no_healthy_control_plane_in_time_is_a_clear_timeout() {
    let aws = fake(Script { repaired_at: None, ..Script::default() });
    let e = interrupt(&aws).await.unwrap_err().to_string();
    assert!(e.starts_with("no healthy control plane 1500 s after the warning (last seen: root-volume"), "{e}");
    assert!(e.contains("lifeboat status --node k8s-master"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_repair_fails_with_the_scripts_step_and_message() {
    let output = "{\"result\":\"failed\",\"step\":\"etcd\",\"message\":\"member update refused\"}";
    let aws = fake(Script { repair_output: output, ..Script::default() });
    let e = interrupt(&aws).await.unwrap_err().to_string();
    assert_eq!(e, "the repair of i-new failed: the script reported failed at step etcd: member update refused");
}

#[tokio::test(start_paused = true)]
async fn a_failed_experiment_stops_the_wait() {
    let aws = fake(Script { experiment_status: "failed", ..Script::default() });
    let e = interrupt(&aws).await.unwrap_err().to_string();
    assert_eq!(e, "the experiment EXP1 ended failed: Target resolution failed");
}

#[tokio::test(start_paused = true)]
async fn an_experiment_that_targets_another_node_is_never_started() {
    let mut aws = fake(Script::default());
    aws.targets[0].resource_tags.insert(TAG.into(), "other".into());
    let e = interrupt(&aws).await.unwrap_err().to_string();
    assert!(e.contains("does not target lifeboat:node=k8s-master"), "{e}");
    assert!(aws.started.lock().unwrap().is_empty());

    let mut aws = fake(Script::default());
    aws.on_demand = true;
    assert!(interrupt(&aws).await.unwrap_err().to_string().contains("FIS interrupts spot instances only"));
    assert!(aws.started.lock().unwrap().is_empty());
}

#[test]
fn a_template_targets_the_node_by_its_tag_or_its_instance_arn() {
    assert!(targets_node(&by_tag(), TAG, "k8s-master", "i-1"));
    let by_arn = vec![ExperimentTarget {
        resource_type: SPOT_TARGET.into(),
        resource_arns: vec!["arn:aws:ec2:eu-west-1:1:instance/i-1".into()],
        resource_tags: BTreeMap::new(),
    }];
    assert!(targets_node(&by_arn, TAG, "k8s-master", "i-1"));
    assert!(!targets_node(&by_arn, TAG, "k8s-master", "i-10"));
    let mut wrong_type = by_tag();
    wrong_type[0].resource_type = "aws:ec2:instance".into();
    assert!(!targets_node(&wrong_type, TAG, "k8s-master", "i-1"));
}

#[test]
fn only_one_running_spot_instance_can_be_interrupted() {
    assert!(victim(&[], TAG, "k8s-master").unwrap_err().to_string().contains("no running instance"));
    let two = [node("i-1", true), node("i-2", true)];
    assert!(victim(&two, TAG, "k8s-master").unwrap_err().to_string().contains("2 running instances"));
    assert_eq!(victim(&two[..1], TAG, "k8s-master").unwrap().id, "i-1");
}
