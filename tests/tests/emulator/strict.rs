//! The model's constraints (strict.py): requests refused as AWS refuses them.

use super::*;

#[tokio::test]
async fn ssm_refuses_a_comment_over_100_characters_as_aws_does() {
    let emu = Emulator::new();
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ssm = emu.ssm().await;
    let send = |comment: String| {
        ssm.send_command()
            .instance_ids(&instance)
            .document_name("AWS-RunShellScript")
            .comment(comment)
            .parameters("commands", vec!["true".to_string()])
            .send()
    };
    let err = send("c".repeat(101)).await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some(
            format!(
                "1 validation error detected: Value '{}' at 'comment' failed to satisfy constraint: \
                 Member must have length less than or equal to 100",
                "c".repeat(101)
            )
            .as_str()
        )
    );
    assert_eq!(emu.calls("SendCommand"), 1, "a validation error is not retried");
    send("c".repeat(100)).await.expect("100 characters are allowed");
}

#[tokio::test]
async fn ssm_lists_every_violation_and_refuses_values_outside_an_enum() {
    let emu = Emulator::new();
    let ssm = emu.ssm().await;
    let err = ssm
        .send_command()
        .instance_ids("i-123")
        .document_name("AWS-RunShellScript")
        .comment("c".repeat(101))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    let message = err.message().unwrap();
    assert!(message.starts_with("2 validation errors detected: Value '[i-123]' at 'instanceIds' "), "{message}");
    assert!(message.contains("; Value 'ccc"), "{message}");

    let filter = aws_sdk_ssm::types::CommandFilter::builder()
        .key(aws_sdk_ssm::types::CommandFilterKey::from("Color"))
        .value("blue")
        .build()
        .unwrap();
    let err = ssm.list_commands().filters(filter).send().await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(
        err.message()
            .unwrap()
            .contains("at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: ["),
        "{err:?}"
    );
}

#[tokio::test]
async fn ec2_refuses_a_missing_required_member_and_a_value_outside_an_enum() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let ec2 = emu.ec2().await;
    // The SDK sends what it is given; EC2 checks the required members.
    let err = ec2.run_instances().image_id(BASE_AMI).min_count(1).subnet_id(&subnet).send().await.unwrap_err();
    assert_eq!(err.code(), Some("MissingParameter"));
    assert_eq!(err.message(), Some("The request must contain the parameter MaxCount"));

    let err = ec2
        .run_instances()
        .image_id(BASE_AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .instance_type(aws_sdk_ec2::types::InstanceType::from("t3.colossal"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert_eq!(err.message(), Some("Invalid value 't3.colossal' for InstanceType."));
    let all = ec2.describe_instances().send().await.unwrap();
    assert!(all.reservations().is_empty(), "nothing launched");
}

#[tokio::test]
async fn sns_refuses_a_missing_required_member_with_validation_error() {
    let emu = Emulator::new();
    let topic = emu.sns().await.create_topic().name("lifeboat").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_string();
    let err = emu.sns().await.publish().topic_arn(&topic).send().await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationError"));
    assert_eq!(
        err.message(),
        Some(
            "1 validation error detected: Value null at 'message' failed to satisfy constraint: Member must not be null"
        )
    );
    let sent = emu.control("GET", "/lifeboat/notifications", &serde_json::Value::Null);
    assert_eq!(sent, json!([]));
}

#[tokio::test]
async fn sns_refuses_subjects_and_messages_as_aws_does() {
    let emu = Emulator::new();
    let sns = emu.sns().await;
    let topic = sns.create_topic().name("lifeboat").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_string();
    let publish =
        |subject: String, message: &str| sns.publish().topic_arn(&topic).subject(subject).message(message).send();
    for subject in ["s".repeat(101), "two\nlines".to_string(), String::new()] {
        let err = publish(subject.clone(), "m").await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Some("InvalidParameter"), Some("Invalid parameter: Subject")),
            "{subject:?}"
        );
    }
    let err = publish("lifeboat: k8s-master relaunched".to_string(), "").await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Some("InvalidParameter"), Some("Invalid parameter: Empty message")));
    publish("s".repeat(100), "m").await.expect("100 characters are allowed");
}
