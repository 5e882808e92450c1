//! Zero data loss: the replacement runs on the old instance's own volumes,
//! and when it cannot, on the best image there is, saying so. Each step
//! resumes after a crash without doing anything twice.

mod common;

use common::*;
use lifeboat_core::config::Config;
use lifeboat_core::memory::MemoryCloud;
use lifeboat_core::model::{
    ErrorKind, ImageState, Instance, InstanceState, Refusal, RootTaskState, Volume, VolumeState,
};
use lifeboat_core::ports::Market;
use lifeboat_core::relaunch::{Outcome, Source};
use std::time::Duration;

/// The arguments of the one repair sent.
fn repair_args(cloud: &MemoryCloud) -> Vec<String> {
    let commands = cloud.commands();
    assert_eq!(commands.len(), 1, "{commands:?}");
    commands[0].args.clone()
}

const FROM_IMAGE: [&str; 3] = ["--from-image", "--timeout", "480"];
const OLD_VOLUMES: [&str; 2] = ["--timeout", "480"];

/// The node's volumes as the old instance had them: (root, data).
fn old_volumes(cloud: &MemoryCloud, old: &str) -> (Volume, Volume) {
    let mine: Vec<Volume> = cloud
        .volumes()
        .into_iter()
        .filter(|v| v.tags.get("lifeboat:instance").map(String::as_str) == Some(old))
        .collect();
    let role = |r: &str| mine.iter().find(|v| v.tags["lifeboat:volume"] == r).cloned().unwrap();
    (role("root"), role("data"))
}

/// A prepared node with a data volume, and a marker on its root that
/// stands for data written after its last backup.
async fn node_with_data(cloud: &MemoryCloud) -> (String, Volume, Volume) {
    let old = cloud.add_node("k8s-master");
    cloud.add_data_volume(&old, "/dev/sdf");
    let report = lifeboat_core::backup::handle(
        cloud,
        &Config::default(),
        &serde_json::json!({}),
        now() - chrono::Duration::hours(12),
    )
    .await
    .unwrap();
    assert!(report.nodes[0].preparation.is_some());
    cloud.finish_images();
    let (root, data) = old_volumes(cloud, &old);
    cloud.set_tag(&root.id, "written-after-the-backup", "etcd revision 1042");
    (old, root, data)
}

fn volume_at(cloud: &MemoryCloud, instance: &Instance, device: &str) -> Volume {
    let id = &instance.volumes.iter().find(|v| v.device == device).unwrap().volume_id;
    cloud.volumes().into_iter().find(|v| &v.id == id).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_replacement_runs_on_the_old_instances_own_volumes() {
    let cloud = MemoryCloud::new();
    let (old, root, data) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(110));
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    let new = cloud.instance(&replacements(&cloud, &old)[0].id).unwrap();
    // The very volumes, at their devices: nothing lost.
    assert_eq!(volume_at(&cloud, &new, "/dev/xvda").id, root.id);
    assert_eq!(volume_at(&cloud, &new, "/dev/sdf").id, data.id);
    assert_eq!(new.volumes.len(), 2, "the image's own data device was left out");
    assert_eq!(volume_at(&cloud, &new, "/dev/xvda").tags["written-after-the-backup"], "etcd revision 1042");
    // The image's root was deleted by the swap; nothing else is left over.
    let loose: Vec<Volume> = cloud.volumes().into_iter().filter(|v| v.state != VolumeState::InUse).collect();
    assert!(loose.is_empty(), "{loose:?}");
    // Ready for the next interruption: kept on termination, naming the replacement.
    assert!(new.volumes.iter().all(|v| !v.delete_on_termination));
    assert!(cloud.volumes().iter().all(|v| v.tags["lifeboat:instance"] == new.id));
    let state = report.state.clone().unwrap();
    assert_eq!(state.source, Source::OldVolumes);
    assert_eq!(repair_args(&cloud), OLD_VOLUMES, "nothing went back in time: no revision bump");
    assert_eq!(state.volumes.len(), 2);
    assert!(state.as_of.unwrap() >= now() + chrono::Duration::seconds(110), "the termination time");
    let steps = steps(&report);
    assert!(steps.contains(&"data-attached") && steps.contains(&"root-swapped"), "{steps:?}");
    // The boot guard may release kubelet by itself, on exactly these disks
    // and this address.
    let user_data = cloud.user_data(&new.id).unwrap();
    assert!(user_data.contains(&format!("ROOT_VOLUME='{}'", root.id)), "{user_data}");
    assert!(user_data.contains(&format!("DATA_VOLUMES='{}=/dev/sdf'", data.id)));
    assert!(user_data.contains(&format!("PRIVATE_IP='{}'", new.private_ip.as_deref().unwrap())));
}

#[tokio::test(start_paused = true)]
async fn without_the_old_root_the_final_image_is_used_if_it_becomes_available_in_time() {
    let cloud = MemoryCloud::new();
    let (old, root, data) = node_with_data(&cloud).await;
    // A person deleted the root (say); the final image is made at the warning.
    cloud.set_tag(&root.id, "lifeboat:instance", "i-someone-else");
    cloud.terminate_in(&old, Duration::from_secs(60));
    let handler = async { run(&cloud, &Config::default(), &warning(&old)).await };
    let finisher = async {
        tokio::time::sleep(Duration::from_secs(120)).await;
        cloud.finish_images();
    };
    let (report, ()) = tokio::join!(handler, finisher);
    let report = report.unwrap();
    let state = report.state.unwrap();
    assert_eq!(state.source, Source::FinalImage, "{state:?}");
    let final_image = cloud.images().into_iter().find(|i| i.tags["lifeboat:kind"] == "final").unwrap();
    assert_eq!(state.image_id.as_deref(), Some(final_image.id.as_str()));
    assert!(state.fallback.unwrap().contains("no preserved root volume"));
    // etcd's revision went back with the image: the repair bumps it.
    assert_eq!(repair_args(&cloud), FROM_IMAGE);
    // An image's state stays held for the repair: the guard cannot tell it.
    let new = &replacements(&cloud, &old)[0];
    let user_data = cloud.user_data(&new.id).unwrap();
    assert!(user_data.contains("ROOT_VOLUME=''") && user_data.contains("PRIVATE_IP=''"), "{user_data}");
    // The preserved data volume is not thrown away: it stays for a person.
    assert!(cloud.volumes().iter().any(|v| v.id == data.id && v.state == VolumeState::Available));
}

#[tokio::test(start_paused = true)]
async fn a_final_image_still_pending_after_the_wait_falls_back_to_the_newest_backup() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    cloud.delete_volume_now(&root.id);
    cloud.terminate_in(&old, Duration::from_secs(60));
    let config = Config { final_image_wait: chrono::Duration::seconds(90), ..Config::default() };
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    let state = report.state.unwrap();
    assert_eq!(state.source, Source::Backup);
    let fallback = state.fallback.unwrap();
    assert!(fallback.contains("final image") && fallback.contains("the final image to be available"), "{fallback}");
    let scheduled = cloud.images().into_iter().find(|i| i.tags["lifeboat:kind"] == "scheduled").unwrap();
    assert_eq!(state.image_id, Some(scheduled.id));
    assert_eq!(state.as_of, scheduled.creation_date);
    assert_eq!(repair_args(&cloud), FROM_IMAGE);
    let user_data = cloud.user_data(&replacements(&cloud, &old)[0].id).unwrap();
    assert!(user_data.contains("ROOT_VOLUME=''"), "a backup's state stays on the repair's release");
}

#[tokio::test(start_paused = true)]
async fn an_old_root_in_another_zone_is_not_used_and_never_deleted() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    cloud.edit_volume(&root.id, |v| v.availability_zone = "eu-west-1b".into());
    cloud.terminate_in(&old, Duration::ZERO);
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    let state = report.state.unwrap();
    assert_eq!(state.source, Source::Backup, "{state:?}");
    assert!(state.fallback.unwrap().contains("is in eu-west-1b, the node's interface in eu-west-1a"));
    assert!(cloud.volumes().iter().any(|v| v.id == root.id), "the old root is never deleted");
}

#[tokio::test(start_paused = true)]
async fn an_unencrypted_old_root_is_not_swapped_for_an_encrypted_one() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    // The account encrypts new volumes by default: the launched root is.
    cloud.encrypt_new_volumes();
    cloud.terminate_in(&old, Duration::ZERO);
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    let state = report.state.unwrap();
    assert_eq!(state.source, Source::Backup, "{state:?}");
    assert!(state.fallback.unwrap().contains("is not encrypted and the image's root is"));
    let new = replacements(&cloud, &old).remove(0);
    assert!(cloud.root_tasks_of(&new.id).is_empty(), "not even tried: EC2 would refuse it");
    assert!(cloud.volumes().iter().any(|v| v.id == root.id && v.state == VolumeState::Available));
}

#[tokio::test(start_paused = true)]
async fn a_root_swap_that_fails_keeps_the_image_root_and_says_so() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    cloud.fail_root_tasks(); // say, a KMS key the role cannot use
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    let state = report.state.unwrap();
    assert_eq!(state.source, Source::Backup);
    assert!(state.fallback.unwrap().contains("ended Failed"));
    let new = cloud.instance(&replacements(&cloud, &old)[0].id).unwrap();
    assert_eq!(new.tags["lifeboat:state-source"], "backup", "a retry reads the truth");
    // Planned on the old volumes, repaired as what it is: an image's state.
    assert_eq!(repair_args(&cloud), FROM_IMAGE);
    assert_ne!(volume_at(&cloud, &new, "/dev/xvda").id, root.id);
    assert!(
        cloud.volumes().iter().any(|v| v.id == root.id && v.state == VolumeState::Available),
        "kept: the only copy"
    );
}

/// The final image of `old`, once made.
fn final_image_of(cloud: &MemoryCloud, old: &str) -> lifeboat_core::model::Image {
    cloud.images().into_iter().find(|i| i.name.ends_with(&format!("final-{old}"))).unwrap()
}

/// Makes the images pending so far available after `after`.
async fn images_available_after(cloud: &MemoryCloud, after: Duration) {
    tokio::time::sleep(after).await;
    cloud.finish_images();
}

#[tokio::test(start_paused = true)]
async fn a_root_swap_that_fails_takes_the_final_images_root_when_it_is_available() {
    let cloud = MemoryCloud::new();
    let (old, root, data) = node_with_data(&cloud).await;
    // Terminated a while after the warning: the final image is started.
    cloud.terminate_in(&old, Duration::from_secs(60));
    cloud.fail_next_root_tasks(1); // the old root's swap
    // The final image becomes available after the launch, before the swap fails.
    let handler = async { run(&cloud, &Config::default(), &warning(&old)).await };
    let (report, ()) = tokio::join!(handler, images_available_after(&cloud, Duration::from_secs(100)));
    let report = report.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    let final_image = final_image_of(&cloud, &old);
    let state = report.state.unwrap();
    assert_eq!(state.source, Source::FinalImage, "{state:?}");
    assert_eq!(state.image_id.as_deref(), Some(final_image.id.as_str()));
    assert_eq!(state.as_of, final_image.creation_date);
    assert!(state.fallback.unwrap().contains("ended Failed"));
    let new = cloud.instance(&replacements(&cloud, &old)[0].id).unwrap();
    let scheduled = cloud.images().into_iter().find(|i| i.tags["lifeboat:kind"] == "scheduled").unwrap();
    assert_eq!(new.tags["lifeboat:restored-from"], scheduled.id, "booted the backup");
    assert_eq!(new.tags["lifeboat:state-source"], "final-image", "a retry reads the truth");
    assert_eq!(new.tags["lifeboat:root-image"], final_image.id);
    let tasks = cloud.root_tasks_of(&new.id);
    let states: Vec<_> = tasks.iter().map(|t| t.state).collect();
    assert_eq!(states, [RootTaskState::Failed, RootTaskState::Succeeded]);
    let new_root = volume_at(&cloud, &new, "/dev/xvda");
    assert_ne!(new_root.id, root.id);
    assert_eq!(volume_at(&cloud, &new, "/dev/sdf").id, data.id, "the data volumes stay the old ones");
    assert!(
        cloud.volumes().iter().any(|v| v.id == root.id && v.state == VolumeState::Available),
        "the old root is kept: the only copy"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_the_final_images_swap_resumes_the_same_task() {
    let cloud = MemoryCloud::new();
    let (old, _, _) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(60));
    cloud.fail_next_root_tasks(1);
    // Out of time while the final image's root is being swapped in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(155);
    let handler = async { run_until(&cloud, &Config::default(), &warning(&old), Some(deadline)).await };
    let (report, ()) = tokio::join!(handler, images_available_after(&cloud, Duration::from_secs(100)));
    let report = failed(report);
    let started = steps(&report).iter().filter(|s| **s == "root-swap-started").count();
    assert!(started == 2 && !steps(&report).contains(&"prepared"), "{:#?}", report.timeline);
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Resumed);
    let state = report.state.unwrap();
    assert_eq!(state.source, Source::FinalImage, "{state:?}");
    assert_eq!(state.image_id, Some(final_image_of(&cloud, &old).id));
    let new = replacements(&cloud, &old);
    assert_eq!(new.len(), 1);
    let states: Vec<_> = cloud.root_tasks_of(&new[0].id).iter().map(|t| t.state).collect();
    assert_eq!(states, [RootTaskState::Failed, RootTaskState::Succeeded], "the same task, not a third");
}

#[tokio::test(start_paused = true)]
async fn a_root_swap_that_fails_on_a_replacement_booted_from_the_final_image_keeps_it() {
    let cloud = MemoryCloud::new();
    let (old, _, _) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(60));
    cloud.fail_next_root_tasks(1);
    // Available before the launch: the replacement boots it.
    let handler = async { run(&cloud, &Config::default(), &warning(&old)).await };
    let (report, ()) = tokio::join!(handler, images_available_after(&cloud, Duration::from_secs(10)));
    let state = report.unwrap().state.unwrap();
    let final_image = final_image_of(&cloud, &old);
    assert_eq!(state.source, Source::FinalImage, "{state:?}");
    assert_eq!(state.image_id, Some(final_image.id.clone()));
    let new = replacements(&cloud, &old).remove(0);
    assert_eq!(new.tags["lifeboat:restored-from"], final_image.id);
    assert_eq!(cloud.root_tasks_of(&new.id).len(), 1, "its own root is already the final image's");
}

#[tokio::test(start_paused = true)]
async fn a_crash_between_launch_and_swap_resumes_with_one_instance_and_one_swap() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    // Out of time while the replacement boots.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(35);
    let report = failed(run_until(&cloud, &Config::default(), &warning(&old), Some(deadline)).await);
    assert!(steps(&report).contains(&"launched") && !steps(&report).contains(&"root-swap-started"));
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Resumed);
    assert_eq!(report.state.as_ref().unwrap().source, Source::OldVolumes, "read back from the replacement's tags");
    let new = replacements(&cloud, &old);
    assert_eq!(new.len(), 1);
    assert_eq!(cloud.root_tasks_of(&new[0].id).len(), 1);
    assert_eq!(volume_at(&cloud, &cloud.instance(&new[0].id).unwrap(), "/dev/xvda").id, root.id);
}

#[tokio::test(start_paused = true)]
async fn a_crash_between_swap_and_repair_resumes_without_a_second_swap() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    // Out of time while the agent registers after the swap's reboot.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(95);
    let report = failed(run_until(&cloud, &Config::default(), &warning(&old), Some(deadline)).await);
    assert!(
        steps(&report).contains(&"root-swapped") && !steps(&report).contains(&"command-sent"),
        "{:?}",
        steps(&report)
    );
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Resumed);
    let new = replacements(&cloud, &old);
    assert_eq!(cloud.root_tasks_of(&new[0].id).len(), 1);
    // Resumed from its tags on the old volumes: no revision bump.
    assert_eq!(repair_args(&cloud), OLD_VOLUMES);
    assert_eq!(volume_at(&cloud, &cloud.instance(&new[0].id).unwrap(), "/dev/xvda").id, root.id);
}

#[tokio::test(start_paused = true)]
async fn a_replacement_interrupted_during_its_recovery_hands_the_same_disks_on() {
    let cloud = MemoryCloud::new();
    let (old, root, data) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    // The replacement is lost right after it got the old disks, before the repair.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(95);
    failed(run_until(&cloud, &Config::default(), &warning(&old), Some(deadline)).await);
    let second = replacements(&cloud, &old).remove(0);
    cloud.terminate_in(&second.id, Duration::ZERO);
    // The retry of the first event follows the generations.
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert!(steps(&report).contains(&"replacement-lost"));
    let third = cloud.instance(&replacements(&cloud, &second.id)[0].id).unwrap();
    assert_eq!(volume_at(&cloud, &third, "/dev/xvda").id, root.id);
    assert_eq!(volume_at(&cloud, &third, "/dev/sdf").id, data.id);
    assert_eq!(report.state.unwrap().source, Source::OldVolumes);
    // And the event for the lost replacement finds the work done.
    let late = run(&cloud, &Config::default(), &warning(&second.id)).await.unwrap();
    assert_eq!(late.outcome, Outcome::AlreadyDone);
}

#[tokio::test(start_paused = true)]
async fn a_relaunch_that_fails_never_deletes_the_preserved_volumes_and_names_them() {
    let cloud = MemoryCloud::new();
    let (old, root, data) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    cloud.refuse_capacity(None, Some(Market::Spot), "InsufficientInstanceCapacity");
    cloud.refuse_capacity(None, Some(Market::OnDemand), "InsufficientInstanceCapacity");
    let report = failed(run(&cloud, &Config::default(), &warning(&old)).await);
    let named = report.state.unwrap().volumes;
    assert!(named.contains(&root.id) && named.contains(&data.id), "{named:?}");
    for id in [&root.id, &data.id] {
        assert!(cloud.volumes().iter().any(|v| &v.id == id && v.state == VolumeState::Available));
    }
    // A later restore uses them.
    cloud.clear_refusals();
    let report =
        run(&cloud, &Config::default(), &serde_json::json!({"action": "restore", "node": "k8s-master"})).await.unwrap();
    assert_eq!(report.state.unwrap().source, Source::OldVolumes);
}

#[tokio::test(start_paused = true)]
async fn a_node_never_prepared_comes_back_from_its_backup_and_says_what_was_lost() {
    let cloud = MemoryCloud::new();
    let old = cloud.add_node("k8s-master");
    let instance = cloud.instance(&old).unwrap();
    let spec = lifeboat_core::spec::LaunchSpec::from_instance(&instance).unwrap();
    let created = chrono::Utc::now() - chrono::Duration::hours(13);
    let (image, _) = cloud.add_image(
        "k8s-master-20261126-0100",
        ImageState::Available,
        Some(created),
        &[("lifeboat:node", "k8s-master")],
    );
    for (k, v) in spec.to_tags() {
        cloud.set_tag(&image, &k, &v);
    }
    cloud.terminate_in(&old, Duration::ZERO);
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    let state = report.state.as_ref().unwrap();
    assert_eq!((state.source, state.as_of), (Source::Backup, Some(created)));
    assert!(report.summary().contains("changes made after it are LOST"), "{}", report.summary());
}

#[tokio::test(start_paused = true)]
async fn a_replacement_lost_before_it_adopted_the_disks_still_hands_them_on() {
    let cloud = MemoryCloud::new();
    let (old, root, data) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    // Out of time while the root swap runs: the swap completes, nothing
    // tags the disks as the replacement's yet.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(50);
    let report = failed(run_until(&cloud, &Config::default(), &warning(&old), Some(deadline)).await);
    assert!(
        steps(&report).contains(&"root-swap-started") && !steps(&report).contains(&"prepared"),
        "{:?}",
        steps(&report)
    );
    let second = replacements(&cloud, &old).remove(0);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(cloud.volumes().iter().any(|v| v.id == root.id && v.tags["lifeboat:instance"] == old), "not adopted");
    cloud.terminate_in(&second.id, Duration::ZERO);
    let report = run(&cloud, &Config::default(), &warning(&second.id)).await.unwrap();
    assert_eq!(report.state.unwrap().source, Source::OldVolumes);
    let third = cloud.instance(&replacements(&cloud, &second.id)[0].id).unwrap();
    assert_eq!(volume_at(&cloud, &third, "/dev/xvda").id, root.id);
    assert_eq!(volume_at(&cloud, &third, "/dev/sdf").id, data.id);
}

// --- Refusals, slow failures, a replacement left without a root ------------------

#[tokio::test(start_paused = true)]
async fn a_swap_ec2_refuses_as_invalid_keeps_the_image_root_and_says_so() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    let refused = ErrorKind::Refused(Refusal::Validation);
    cloud.fail_next("CreateReplaceRootVolumeTask", refused, "InvalidParameterValue", 1);
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    let state = report.state.unwrap();
    assert_eq!(state.source, Source::Backup, "{state:?}");
    assert!(
        state
            .fallback
            .unwrap()
            .contains("EC2 refused the swap: CreateReplaceRootVolumeTask failed: InvalidParameterValue")
    );
    assert!(cloud.volumes().iter().any(|v| v.id == root.id && v.state == VolumeState::Available));
}

#[tokio::test(start_paused = true)]
async fn a_swap_iam_denies_fails_the_relaunch_loudly_and_the_retry_swaps_the_old_root() {
    let topic = "arn:aws:sns:eu-west-1:123456789012:lifeboat";
    let config = Config { notify_topic_arn: Some(topic.into()), ..Config::default() };
    let cloud = MemoryCloud::new();
    let (old, root, data) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    let denied = ErrorKind::Refused(Refusal::Authorization);
    cloud.fail_next("CreateReplaceRootVolumeTask", denied, "UnauthorizedOperation", 1);
    let report = failed(run(&cloud, &config, &warning(&old)).await);
    assert!(report.reason.as_deref().unwrap().contains("UnauthorizedOperation"), "{:?}", report.reason);
    assert!(steps(&report).contains(&"root-swap-denied"), "{:?}", steps(&report));
    assert!(!steps(&report).contains(&"image-root-kept") && !steps(&report).contains(&"prepared"));
    assert_eq!(cloud.notifications()[0].subject, "lifeboat: relaunch of k8s-master FAILED");
    // Nothing fell back: the replacement still says the old volumes, the old root is untouched.
    let new = replacements(&cloud, &old).remove(0);
    assert_eq!(new.tags["lifeboat:state-source"], "old-volumes");
    assert!(cloud.root_tasks_of(&new.id).is_empty());
    assert!(cloud.volumes().iter().any(|v| v.id == root.id && v.state == VolumeState::Available));
    // Once IAM lets it, the retry gives the node its own disks.
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Resumed);
    let new = cloud.instance(&new.id).unwrap();
    assert_eq!(volume_at(&cloud, &new, "/dev/xvda").id, root.id);
    assert_eq!(volume_at(&cloud, &new, "/dev/sdf").id, data.id);
}

#[tokio::test(start_paused = true)]
async fn a_failing_swap_is_waited_out_until_it_failed_before_the_next_swap() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(60));
    // The old root's task is `failing` for 40 s before it is `failed`.
    cloud.fail_next_root_task_slowly(false, Duration::from_secs(40));
    let handler = async { run(&cloud, &Config::default(), &warning(&old)).await };
    let (report, ()) = tokio::join!(handler, images_available_after(&cloud, Duration::from_secs(100)));
    let report = report.unwrap();
    // The final image's task was started only once the first one had
    // failed: EC2 takes no second task while one is failing.
    let state = report.state.clone().unwrap();
    assert_eq!(state.source, Source::FinalImage, "{state:?}");
    assert!(state.fallback.unwrap().contains("ended Failed"));
    let at = |step: &str| report.timeline.iter().find(|s| s.step == step).unwrap().at_ms;
    assert!(at("root-not-swapped") >= at("root-swap-started") + 70_000, "{:#?}", report.timeline);
    let new = replacements(&cloud, &old).remove(0);
    let states: Vec<_> = cloud.root_tasks_of(&new.id).iter().map(|t| t.state).collect();
    assert_eq!(states, [RootTaskState::Failed, RootTaskState::Succeeded]);
    assert!(cloud.volumes().iter().any(|v| v.id == root.id && v.state == VolumeState::Available));
}

#[tokio::test(start_paused = true)]
async fn a_swap_that_leaves_the_replacement_without_a_root_relaunches_the_node_on_its_disks() {
    let cloud = MemoryCloud::new();
    let (old, root, data) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    cloud.fail_next_root_task_slowly(true, Duration::from_secs(20));
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    let steps = steps(&report);
    for step in ["root-lost", "replacement-terminated", "replacement-lost"] {
        assert!(steps.contains(&step), "{step}: {steps:?}");
    }
    // The rootless replacement is gone; its successor runs on the node's own disks.
    let rootless = cloud.instance(&replacements(&cloud, &old)[0].id).unwrap();
    assert_eq!(rootless.state, InstanceState::Terminated);
    let states: Vec<_> = cloud.root_tasks_of(&rootless.id).iter().map(|t| t.state).collect();
    assert_eq!(states, [RootTaskState::FailedDetached]);
    let third = cloud.instance(&replacements(&cloud, &rootless.id)[0].id).unwrap();
    assert_eq!(report.replacement.unwrap().id, third.id);
    assert_eq!(volume_at(&cloud, &third, "/dev/xvda").id, root.id);
    assert_eq!(volume_at(&cloud, &third, "/dev/sdf").id, data.id);
    assert_eq!(report.state.unwrap().source, Source::OldVolumes);
    assert_eq!(cloud.commands().len(), 1, "repaired once, on the third instance");
    // The root it was launched with (a copy of the backup) is left, and named.
    let lost = report.timeline.iter().find(|s| s.step == "root-lost").unwrap();
    let left: Vec<Volume> = cloud.volumes().into_iter().filter(|v| v.state == VolumeState::Available).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(lost.detail.contains(&left[0].id), "{}", lost.detail);
}

// --- Bare metal --------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn bare_metal_types_are_left_out_when_the_old_root_must_be_swapped_in() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    let config = Config { instance_types: vec!["m5.metal".into(), "m6i.large".into()], ..Config::default() };
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    assert_eq!(report.state.clone().unwrap().source, Source::OldVolumes);
    let new = cloud.instance(&replacements(&cloud, &old)[0].id).unwrap();
    assert_eq!((new.instance_type.as_str(), new.spot), ("m6i.large", true));
    assert_eq!(volume_at(&cloud, &new, "/dev/xvda").id, root.id);
    assert!(report.launch_attempts.is_empty(), "never tried, not refused: {:?}", report.launch_attempts);
    let plan = report.timeline.iter().find(|s| s.step == "capacity-plan").unwrap();
    assert!(plan.detail.contains("m5.metal Spot, m5.metal OnDemand left out"), "{}", plan.detail);
}

#[tokio::test(start_paused = true)]
async fn with_only_bare_metal_allowed_the_node_comes_back_from_an_image_and_keeps_its_old_root() {
    let cloud = MemoryCloud::new();
    let (old, root, _) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    let config = Config { instance_types: vec!["c7i.metal-24xl".into()], ..Config::default() };
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    let state = report.state.unwrap();
    assert_eq!(state.source, Source::Backup, "{state:?}");
    assert!(state.fallback.unwrap().contains("bare metal, which cannot replace its root volume"));
    let new = replacements(&cloud, &old).remove(0);
    assert_eq!(new.instance_type, "c7i.metal-24xl");
    assert!(cloud.root_tasks_of(&new.id).is_empty());
    assert!(cloud.volumes().iter().any(|v| v.id == root.id && v.state == VolumeState::Available));
}

#[tokio::test(start_paused = true)]
async fn replacements_lost_round_after_round_end_in_a_clear_failure_with_the_disks_kept() {
    let cloud = MemoryCloud::new();
    let (old, root, data) = node_with_data(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    for _ in 0..3 {
        cloud.fail_next_root_task_slowly(true, Duration::from_secs(5));
    }
    let report = failed(run(&cloud, &Config::default(), &warning(&old)).await);
    assert_eq!(
        report.reason.as_deref(),
        Some(
            "3 replacements of node k8s-master were lost to their own launch or recovery in this invocation \
             (see the timeline)"
        )
    );
    assert_eq!(steps(&report).iter().filter(|s| **s == "root-lost").count(), 3);
    assert!(cloud.instances().iter().all(|i| i.state == InstanceState::Terminated), "no rootless instance left");
    // Released a moment after the last termination, and never deleted.
    tokio::time::advance(Duration::from_secs(10)).await;
    for id in [&root.id, &data.id] {
        assert!(cloud.volumes().iter().any(|v| &v.id == id && v.state == VolumeState::Available), "{id}");
    }
}
