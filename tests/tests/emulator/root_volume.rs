//! Root volume replacement: the swap, what AWS refuses, how a task fails.

use super::*;

#[tokio::test]
async fn a_root_volume_task_swaps_in_the_given_volume_and_reboots_the_instance() {
    let emu = Emulator::new();
    // A reboot long enough that the checks between the task's success and
    // the agent's return finish inside it on a loaded machine.
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.6, "reboot_seconds": 6.0}));
    let (root, replacement) = preserved_root_and_replacement(&emu).await;
    let ec2 = emu.ec2().await;
    let image_root = devices(&emu, &replacement).await[0].clone();
    assert_eq!(image_root.0, "/dev/sda1");
    let create = |volume: &str, token: &str| {
        ec2.create_replace_root_volume_task()
            .instance_id(&replacement)
            .volume_id(volume)
            .delete_replaced_root_volume(true)
            .client_token(token)
            .tag_specifications(tag_spec(ResourceType::ReplaceRootVolumeTask, "lifeboat:node", "k8s-master"))
            .send()
    };
    let created = create(&root, "swap-1").await.unwrap();
    let created = created.replace_root_volume_task().unwrap();
    let id = created.replace_root_volume_task_id().unwrap().to_string();
    assert_eq!(created.task_state().unwrap().as_str(), "pending");
    assert_eq!(created.delete_replaced_root_volume(), Some(true));
    assert_eq!(tag_pairs(created.tags()), [("lifeboat:node".to_string(), "k8s-master".to_string())]);
    let again = create(&root, "swap-1").await.unwrap();
    assert_eq!(again.replace_root_volume_task().unwrap().replace_root_volume_task_id(), Some(id.as_str()));
    let other = ec2.create_volume().availability_zone("eu-west-1a").size(8).send().await.unwrap();
    let err = create(other.volume_id().unwrap(), "swap-1").await.unwrap_err();
    assert_eq!(err.code(), Some("IdempotentParameterMismatch"));

    let by_instance = Filter::builder().name("instance-id").values(&replacement).build();
    let listed = ec2.describe_replace_root_volume_tasks().filters(by_instance).send().await.unwrap();
    assert_eq!(listed.replace_root_volume_tasks().len(), 1);
    let done = wait_for_task(&ec2, &id).await;
    assert_eq!(done.task_state().unwrap().as_str(), "succeeded");
    assert!(done.complete_time().is_some());

    // The root device is now the old node's root, same id, marker included.
    let after = devices(&emu, &replacement).await;
    assert_eq!(after[0], ("/dev/sda1".to_string(), root.clone(), image_root.2), "DeleteOnTermination as the original");
    let swapped = volume(&ec2, &root).await;
    assert_eq!(swapped.state().unwrap().as_str(), "in-use");
    assert!(tag_pairs(swapped.tags()).contains(&("marker".to_string(), "after-backup".to_string())));
    let err = ec2.describe_volumes().volume_ids(&image_root.1).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidVolume.NotFound"), "the image's root was deleted");

    // The reboot: the agent is away for a moment.
    assert_eq!(ping_status(&emu, &replacement).await.as_deref(), Some("ConnectionLost"));
    let err = run_shell(&emu.ssm().await, &replacement, "600").await.unwrap_err();
    assert_eq!(err, "InvalidInstanceId");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ping_status(&emu, &replacement).await.as_deref() != Some("Online") {
        assert!(Instant::now() < deadline, "the agent never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    let succeeded = event_at(&events, &id, "task-succeeded").unwrap();
    let online = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"] == replacement.as_str() && e["event"] == "online")
        .map(|e| e["at"].as_f64().unwrap())
        .next_back()
        .unwrap();
    assert!((online - succeeded - 6.0).abs() < 0.01, "{events}");
    assert!((succeeded - event_at(&events, &id, "task-pending").unwrap() - 0.6).abs() < 0.01, "{events}");
}

#[tokio::test]
async fn a_root_volume_task_refuses_what_aws_refuses() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.4}));
    let (root, replacement) = preserved_root_and_replacement(&emu).await;
    let ec2 = emu.ec2().await;
    let zone = emu.instance(&replacement).await.placement().unwrap().availability_zone().unwrap().to_string();
    let other_zone = if zone == "eu-west-1a" { "eu-west-1b" } else { "eu-west-1a" };
    let task = || ec2.create_replace_root_volume_task().instance_id(&replacement);
    let code = |r: Result<_, aws_sdk_ec2::error::SdkError<_, _>>| r.unwrap_err().code().map(str::to_string);

    let elsewhere = ec2.create_volume().availability_zone(other_zone).size(8).send().await.unwrap();
    assert_eq!(
        code(task().volume_id(elsewhere.volume_id().unwrap()).send().await),
        Some("InvalidVolume.ZoneMismatch".into())
    );
    let in_use = devices(&emu, &replacement).await[0].1.clone();
    assert_eq!(code(task().volume_id(&in_use).send().await), Some("VolumeInUse".into()));
    let snapshot = ec2.create_snapshot().volume_id(&root).send().await.unwrap();
    let both = task().volume_id(&root).snapshot_id(snapshot.snapshot_id().unwrap()).send().await;
    assert_eq!(code(both), Some("InvalidParameterCombination".into()));
    assert_eq!(
        code(task().snapshot_id(snapshot.snapshot_id().unwrap()).send().await),
        Some("InvalidParameterValue".into()),
        "a snapshot of another volume than the instance's root"
    );

    task().volume_id(&root).send().await.unwrap();
    let second = ec2.create_volume().availability_zone(&zone).size(8).send().await.unwrap();
    assert_eq!(code(task().volume_id(second.volume_id().unwrap()).send().await), Some("IncorrectState".into()));

    ec2.stop_instances().instance_ids(&replacement).send().await.unwrap();
    assert_eq!(code(task().volume_id(second.volume_id().unwrap()).send().await), Some("IncorrectInstanceState".into()));
    let unknown = ec2.describe_replace_root_volume_tasks().replace_root_volume_task_ids("replacevol-0123456789abcdef0");
    let err = unknown.send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidReplaceRootVolumeTaskId.NotFound"));

    // An encrypted root takes only an encrypted volume.
    let subnet = emu.instance(&replacement).await.subnet_id().unwrap().to_string();
    let encrypted = ec2
        .run_instances()
        .image_id(BASE_AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .block_device_mappings(ebs("/dev/sda1", EbsBlockDevice::builder().volume_size(8).encrypted(true).build()))
        .send()
        .await
        .unwrap();
    let encrypted = encrypted.instances()[0].instance_id().unwrap().to_string();
    let err = ec2
        .create_replace_root_volume_task()
        .instance_id(&encrypted)
        .volume_id(second.volume_id().unwrap())
        .send()
        .await;
    assert_eq!(code(err), Some("InvalidParameterValue".into()));
}

#[tokio::test]
async fn a_root_volume_task_whose_volume_went_away_fails_with_the_original_attached() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.4, "reboot_seconds": 0}));
    let (root, replacement) = preserved_root_and_replacement(&emu).await;
    let ec2 = emu.ec2().await;
    let original = devices(&emu, &replacement).await[0].1.clone();
    let failing = ec2
        .create_replace_root_volume_task()
        .instance_id(&replacement)
        .volume_id(&root)
        .delete_replaced_root_volume(true)
        .send()
        .await
        .unwrap();
    let failing = failing.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
    ec2.delete_volume().volume_id(&root).send().await.unwrap();
    assert_eq!(wait_for_task(&ec2, &failing).await.task_state().unwrap().as_str(), "failed");
    assert_eq!(devices(&emu, &replacement).await[0].1, original, "the original root is still attached");

    // Kept when not asked to delete it, and listed page by page.
    let zone = emu.instance(&replacement).await.placement().unwrap().availability_zone().unwrap().to_string();
    let fresh = ec2.create_volume().availability_zone(&zone).size(8).send().await.unwrap();
    let kept = ec2
        .create_replace_root_volume_task()
        .instance_id(&replacement)
        .volume_id(fresh.volume_id().unwrap())
        .send()
        .await
        .unwrap();
    let kept = kept.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
    assert_eq!(wait_for_task(&ec2, &kept).await.task_state().unwrap().as_str(), "succeeded");
    assert_eq!(volume(&ec2, &original).await.state().unwrap().as_str(), "available");
    let first = ec2.describe_replace_root_volume_tasks().max_results(1).send().await.unwrap();
    assert_eq!(first.replace_root_volume_tasks()[0].replace_root_volume_task_id(), Some(failing.as_str()));
    let second = ec2
        .describe_replace_root_volume_tasks()
        .max_results(1)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.replace_root_volume_tasks()[0].replace_root_volume_task_id(), Some(kept.as_str()));
    assert_eq!(second.next_token(), None);
}

#[tokio::test]
async fn a_root_volume_task_restores_a_snapshot_an_image_or_the_launch_state() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.2, "reboot_seconds": 0}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let original = devices(&emu, &instance).await[0].clone();
    let snapshot = ec2.create_snapshot().volume_id(&original.1).send().await.unwrap();
    let snapshot = snapshot.snapshot_id().unwrap().to_string();
    let sources = [
        ec2.create_replace_root_volume_task().instance_id(&instance).snapshot_id(&snapshot),
        ec2.create_replace_root_volume_task().instance_id(&instance).image_id(BASE_AMI),
        ec2.create_replace_root_volume_task().instance_id(&instance),
    ];
    let mut roots = vec![original.1.clone()];
    for source in sources {
        let created = source.send().await.unwrap();
        let id = created.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
        assert_eq!(wait_for_task(&ec2, &id).await.task_state().unwrap().as_str(), "succeeded");
        let root = devices(&emu, &instance).await[0].clone();
        assert!(!roots.contains(&root.1), "a new volume each time");
        assert_eq!(root.2, original.2, "DeleteOnTermination as the original root");
        roots.push(root.1);
    }
    assert_eq!(volume(&ec2, &roots[1]).await.snapshot_id(), Some(snapshot.as_str()));
    assert_eq!(volume(&ec2, &original.1).await.state().unwrap().as_str(), "available", "kept: not asked to delete");
}

#[tokio::test]
async fn a_root_volume_task_refuses_a_smaller_or_unready_image_a_volume_that_cannot_boot_and_bare_metal() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.2, "ami_pending_seconds": 600}));
    let ec2 = emu.ec2().await;
    let code = |r: Result<_, aws_sdk_ec2::error::SdkError<_, _>>| r.unwrap_err().code().map(str::to_string);
    let big = instance_with_root(&emu, "t3.medium", 20).await;
    let small = instance_with_root(&emu, "t3.medium", 8).await;
    let image_of = |instance: String, name: &'static str| {
        let ec2 = ec2.clone();
        async move {
            let out = ec2.create_image().instance_id(instance).name(name).no_reboot(true).send().await.unwrap();
            out.image_id().unwrap().to_string()
        }
    };
    let small_image = image_of(small.clone(), "small-root").await;
    let big_image = image_of(big.clone(), "big-root").await;
    let task = || ec2.create_replace_root_volume_task().instance_id(&big);
    // Pending: not an image anything can be launched from yet.
    assert_eq!(code(task().image_id(&big_image).send().await), Some("InvalidAMIID.Unavailable".into()));
    for image in [&small_image, &big_image] {
        emu.control("POST", &format!("/lifeboat/images/{image}"), &json!({"state": "available"}));
    }
    // The image's root must be at least the instance's current root.
    assert_eq!(code(task().image_id(&small_image).send().await), Some("InvalidParameterValue".into()));
    let zone = emu.instance(&big).await.placement().unwrap().availability_zone().unwrap().to_string();
    let throughput = ec2
        .create_volume()
        .availability_zone(&zone)
        .size(125)
        .volume_type(aws_sdk_ec2::types::VolumeType::St1)
        .send()
        .await
        .unwrap();
    let throughput = throughput.volume_id().unwrap();
    assert_eq!(code(task().volume_id(throughput).send().await), Some("BootForVolumeTypeUnsupported".into()));
    let created = task().image_id(&big_image).send().await.unwrap();
    let id = created.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
    assert_eq!(wait_for_task(&ec2, &id).await.task_state().unwrap().as_str(), "succeeded");
    // Bare metal cannot replace its root; Mac metal can (replace-root.html).
    let metal = instance_with_root(&emu, "m5.metal", 8).await;
    let refused = ec2.create_replace_root_volume_task().instance_id(&metal).send().await;
    assert_eq!(code(refused), Some("UnsupportedOperation".into()));
    let mac = instance_with_root(&emu, "mac2.metal", 8).await;
    ec2.create_replace_root_volume_task().instance_id(&mac).send().await.unwrap();
}

#[tokio::test]
async fn a_root_volume_task_restores_a_snapshot_of_an_earlier_root_of_the_instance() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.2, "reboot_seconds": 0}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let first_root = devices(&emu, &instance).await[0].1.clone();
    let earlier = ec2.create_snapshot().volume_id(&first_root).send().await.unwrap();
    let earlier = earlier.snapshot_id().unwrap().to_string();
    let zone = emu.instance(&instance).await.placement().unwrap().availability_zone().unwrap().to_string();
    let fresh = ec2.create_volume().availability_zone(&zone).size(8).send().await.unwrap();
    let swap = |request: aws_sdk_ec2::operation::create_replace_root_volume_task::builders::CreateReplaceRootVolumeTaskFluentBuilder| async {
        let created = request.send().await.unwrap();
        let id = created.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
        wait_for_task(&ec2, &id).await.task_state().unwrap().as_str().to_string()
    };
    let to_fresh = ec2.create_replace_root_volume_task().instance_id(&instance).volume_id(fresh.volume_id().unwrap());
    assert_eq!(swap(to_fresh).await, "succeeded");
    assert_eq!(devices(&emu, &instance).await[0].1, fresh.volume_id().unwrap());
    // The snapshot is of the root before: of the instance's lineage all the same.
    let back = ec2.create_replace_root_volume_task().instance_id(&instance).snapshot_id(&earlier);
    assert_eq!(swap(back).await, "succeeded");
    let root = devices(&emu, &instance).await[0].1.clone();
    assert_eq!(volume(&ec2, &root).await.snapshot_id(), Some(earlier.as_str()));
}

#[tokio::test]
async fn root_task_failures_go_through_failing_to_failed_or_failed_detached() {
    let emu = Emulator::new();
    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({"root_task_seconds": 0.2, "reboot_seconds": 0,
                "root_task_failures": [{"failing_seconds": 0.6}, {"detached": true, "failing_seconds": 0.6}]}),
    );
    let (root, replacement) = preserved_root_and_replacement(&emu).await;
    let ec2 = emu.ec2().await;
    let original = devices(&emu, &replacement).await[0].1.clone();
    let start = |volume: &str| {
        let request = ec2.create_replace_root_volume_task().instance_id(&replacement).volume_id(volume);
        async move {
            let created = request.send().await.unwrap();
            created.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string()
        }
    };
    let until_not = |id: String, state: &'static str| {
        let ec2 = ec2.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let now = task(&ec2, &id).await.task_state().unwrap().as_str().to_string();
                if now != state {
                    return now;
                }
                assert!(Instant::now() < deadline, "{id} stayed {state}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let failing = start(&root).await;
    assert_eq!(wait_for_task(&ec2, &failing).await.task_state().unwrap().as_str(), "failing");
    // Still in progress: no second task.
    let zone = emu.instance(&replacement).await.placement().unwrap().availability_zone().unwrap().to_string();
    let spare = ec2.create_volume().availability_zone(&zone).size(8).send().await.unwrap();
    let second = ec2.create_replace_root_volume_task().instance_id(&replacement).volume_id(spare.volume_id().unwrap());
    assert_eq!(second.send().await.unwrap_err().code(), Some("IncorrectState"));
    assert_eq!(until_not(failing.clone(), "failing").await, "failed");
    assert_eq!(devices(&emu, &replacement).await[0].1, original, "the original root is still attached");

    let detached = start(&root).await;
    assert_eq!(wait_for_task(&ec2, &detached).await.task_state().unwrap().as_str(), "failing-detached");
    assert_eq!(until_not(detached.clone(), "failing-detached").await, "failed-detached");
    assert!(devices(&emu, &replacement).await.iter().all(|d| d.0 != "/dev/sda1"), "no root at all");
    assert_eq!(volume(&ec2, &original).await.state().unwrap().as_str(), "available");
    assert_eq!(volume(&ec2, &root).await.state().unwrap().as_str(), "available");
    assert_eq!(ping_status(&emu, &replacement).await.as_deref(), Some("ConnectionLost"));
    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    for (id, event) in [
        (&failing, "task-failing"),
        (&failing, "task-failed"),
        (&detached, "task-failing-detached"),
        (&detached, "task-failed-detached"),
    ] {
        assert!(event_at(&events, id, event).is_some(), "{event}: {events}");
    }
}
