use super::*;
use crate::ports::AccountConcurrency;
use lifeboat_core::model::CloudError;
use std::sync::Mutex;

/// Answers every invocation with `answer` and records what was asked.
struct FakeLambda {
    answer: Invoked,
    calls: Mutex<Vec<(String, Value)>>,
}

impl Functions for FakeLambda {
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Invoked, CloudError> {
        self.calls.lock().unwrap().push((function.to_string(), payload.clone()));
        Ok(self.answer.clone())
    }

    async fn account_concurrency(&self) -> Result<AccountConcurrency, CloudError> {
        unreachable!()
    }
}

fn lambda(answer: Invoked) -> FakeLambda {
    FakeLambda { answer, calls: Mutex::new(Vec::new()) }
}

fn stack() -> Stack {
    Stack {
        name: "lifeboat".into(),
        status: "CREATE_COMPLETE".into(),
        outputs: [
            (stack::SCHEDULED_BACKUP.to_string(), "lifeboat-scheduled-backup".to_string()),
            (stack::INTERRUPTION_HANDLER.to_string(), "lifeboat-interruption-handler".to_string()),
        ]
        .into(),
        parameters: Default::default(),
    }
}

fn drill_report(outcome: &str) -> Value {
    json!({
        "trigger": "test-restore", "outcome": outcome, "node": "k8s-master", "reason": "the clone is not healthy: etcd",
        "replacement": {"id": "i-clone", "private_ip": "10.0.1.9", "same_ip": false},
        "state": {"source": "backup", "image_id": "ami-1", "as_of": "2026-11-30T01:00:00Z", "volumes": []},
        "timeline": [
            {"step": "image", "at_ms": 0, "detail": "ami-1 (k8s-master-20261130-0100)"},
            {"step": "healthy", "at_ms": 151200, "detail": "apiserver ready, etcd healthy, node present"},
        ],
        "duration_ms": 151200,
    })
}

#[tokio::test]
async fn each_action_invokes_the_function_its_output_names_with_its_event() {
    for (action, function, payload) in [
        (Action::Backup, "lifeboat-scheduled-backup", json!({"node": "k8s-master"})),
        (Action::Drill, "lifeboat-interruption-handler", json!({"action": "test-restore", "node": "k8s-master"})),
        (Action::Restore, "lifeboat-interruption-handler", json!({"action": "restore", "node": "k8s-master"})),
    ] {
        let fake = lambda(Invoked::Response(json!({})));
        run(&fake, &stack(), action, "k8s-master").await.unwrap();
        assert_eq!(fake.calls.lock().unwrap().as_slice(), [(function.to_string(), payload)]);
    }
}

#[tokio::test]
async fn a_stack_without_the_output_is_an_error_before_any_call() {
    let fake = lambda(Invoked::Response(json!({})));
    let mut s = stack();
    s.outputs.clear();
    let e = run(&fake, &s, Action::Drill, "k8s-master").await.unwrap_err();
    assert!(e.contains("no output InterruptionHandlerFunctionName"), "{e}");
    assert!(fake.calls.lock().unwrap().is_empty());
}

#[test]
fn a_passed_drill_prints_its_timeline_and_state() {
    let o = interpret(Action::Drill, "k8s-master", "fn", Invoked::Response(drill_report("drill-passed")));
    assert!(o.passed);
    assert_eq!(o.headline, "the restore drill of k8s-master passed on clone i-clone (10.0.1.9)");
    assert_eq!(o.state.as_deref(), Some("the newest backup image, as of 2026-11-30T01:00:00Z (ami-1)"));
    assert_eq!(o.timeline.len(), 2);
    assert_eq!((o.timeline[1].at_seconds, o.timeline[1].step.as_str()), (151.2, "healthy"));
}

#[test]
fn a_failed_report_fails_with_its_reason() {
    let o = interpret(Action::Drill, "k8s-master", "fn", Invoked::Response(drill_report("failed")));
    assert!(!o.passed);
    assert_eq!(o.headline, "the restore drill of k8s-master FAILED: the clone is not healthy: etcd");
}

#[test]
fn a_function_error_fails_with_its_whole_message() {
    let message =
        "restore drill of node k8s-master failed: waiting for i-1 to be an Online managed node: not after 300 s";
    let o = interpret(
        Action::Drill,
        "k8s-master",
        "fn",
        Invoked::FunctionError { error_type: "RelaunchError".into(), message: message.into() },
    );
    assert!(!o.passed);
    assert_eq!(o.outcome, "function-error");
    assert_eq!(o.headline, format!("the restore drill of k8s-master FAILED: {message}"));
    assert_eq!(o.report["errorMessage"], message);
}

#[test]
fn a_rejected_request_fails_with_its_reason() {
    let reason = "no instance carries the tag lifeboat:node=nowhere";
    let report = json!({"outcome": "rejected", "error_type": "NodeNotFound", "reason": reason});
    let o = interpret(Action::Backup, "nowhere", "fn", Invoked::Response(report));
    assert!(!o.passed);
    assert_eq!(o.outcome, "rejected");
    assert_eq!(o.headline, format!("the backup of nowhere FAILED: {reason}"));
    assert_eq!(o.report["error_type"], "NodeNotFound");
}

#[test]
fn a_restore_says_whether_the_ip_is_the_same() {
    let mut r = drill_report("relaunched");
    r["replacement"]["same_ip"] = json!(true);
    r["state"]["source"] = json!("old-volumes");
    let o = interpret(Action::Restore, "k8s-master", "fn", Invoked::Response(r));
    assert!(o.passed);
    assert_eq!(o.headline, "k8s-master was restored as i-clone on 10.0.1.9 (the same private IP)");
    assert!(o.state.unwrap().starts_with("the old instance's own disks (nothing lost)"));
}

#[test]
fn a_backup_passes_when_the_image_exists_and_the_node_is_prepared() {
    let report = |outcome: &str, interface: &str| {
        json!({"nodes": [{"node": "k8s-master", "instance": "i-1", "outcome": outcome, "image_id": "ami-1",
            "name": "k8s-master-20261130-1412", "interface": {"outcome": interface}, "volumes": {"outcome": "kept"}}]})
    };
    let o = interpret(Action::Backup, "k8s-master", "fn", Invoked::Response(report("created", "kept")));
    assert!(o.passed);
    assert_eq!(o.headline, "k8s-master (i-1): created k8s-master-20261130-1412 ami-1; interface kept; volumes kept");
    assert!(
        interpret(Action::Backup, "k8s-master", "fn", Invoked::Response(report("already-existed", "already-kept")))
            .passed
    );
    assert!(!interpret(Action::Backup, "k8s-master", "fn", Invoked::Response(report("created", "failed"))).passed);
    assert!(!interpret(Action::Backup, "k8s-master", "fn", Invoked::Response(report("skipped", "kept"))).passed);
    let other = interpret(Action::Backup, "other", "fn", Invoked::Response(report("created", "kept")));
    assert!(!other.passed);
    assert_eq!(other.headline, "the report names no backup of other");
}
