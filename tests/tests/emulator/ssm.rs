//! Run Command: who is online, what is sent where, invocations, timeouts, the stack's documents, agents without a profile.

use super::*;

#[tokio::test]
async fn ssm_sees_online_instances_and_sends_only_to_the_requested_one() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let target = emu.launch(&subnet, &[]).await;
    let bystander = emu.launch(&subnet, &[]).await;
    let offline = emu.launch(&subnet, &[]).await;
    emu.control("POST", "/lifeboat/config", &json!({"offline_instances": [offline]}));
    let ssm = emu.ssm().await;

    let info = ssm.describe_instance_information().send().await.unwrap();
    let mut online: Vec<(String, String)> = info
        .instance_information_list()
        .iter()
        .map(|i| (i.instance_id().unwrap().to_string(), i.ping_status().unwrap().as_str().to_string()))
        .collect();
    online.sort();
    let mut expected = vec![(target.clone(), "Online".to_string()), (bystander.clone(), "Online".to_string())];
    expected.sort();
    assert_eq!(online, expected);

    let err = ssm
        .send_command()
        .instance_ids(&offline)
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["true".to_string()])
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceId"));

    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({"command_results": [{"status": "Failed", "response_code": 3, "stdout": "{\"result\":\"failed\"}"}]}),
    );
    let sent = ssm
        .send_command()
        .instance_ids(&target)
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["true".to_string()])
        .send()
        .await
        .unwrap();
    let command = sent.command().unwrap();
    assert_eq!(command.instance_ids(), std::slice::from_ref(&target));
    let invocation = invocation(&ssm, command.command_id().unwrap(), &target).await;
    assert_eq!(invocation.status().unwrap().as_str(), "Failed");
    assert_eq!(invocation.response_code(), 3);
    assert_eq!(invocation.standard_output_content(), Some("{\"result\":\"failed\"}"));
    let err = ssm
        .get_command_invocation()
        .command_id(command.command_id().unwrap())
        .instance_id(&bystander)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvocationDoesNotExist"));
}

#[tokio::test]
async fn an_invocation_exists_a_moment_after_send_command() {
    let emu = Emulator::new();
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ssm = emu.ssm().await;
    let command = run_shell(&ssm, &instance, "600").await.unwrap();
    let err = ssm.get_command_invocation().command_id(&command).instance_id(&instance).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvocationDoesNotExist"));
    let sent = Instant::now();
    let done = invocation(&ssm, &command, &instance).await;
    assert!(sent.elapsed() > Duration::from_millis(300), "ssm_invocation_delay_seconds is 0.5 by default");
    assert_eq!(done.status().unwrap().as_str(), "Success");
}

#[tokio::test]
async fn a_command_running_past_its_execution_timeout_ends_timed_out() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ssm_invocation_delay_seconds": 0}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ssm = emu.ssm().await;
    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({"command_results": [{"seconds": 30, "stdout": "{\"result\":\"repaired\"}"}, {"seconds": 0.2}]}),
    );
    let slow = run_shell(&ssm, &instance, "1").await.unwrap();
    let quick = run_shell(&ssm, &instance, "1").await.unwrap();
    assert_eq!(invocation(&ssm, &slow, &instance).await.status().unwrap().as_str(), "InProgress");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let timed_out = invocation(&ssm, &slow, &instance).await;
    assert_eq!(timed_out.status().unwrap().as_str(), "TimedOut");
    assert_eq!(timed_out.status_details(), Some("ExecutionTimedOut"));
    assert_eq!(timed_out.response_code(), -1);
    assert_eq!(timed_out.standard_output_content(), Some(""));
    assert_eq!(invocation(&ssm, &quick, &instance).await.status().unwrap().as_str(), "Success");

    // AWS-RunShellScript's own parameters, as AWS declares them.
    assert_eq!(run_shell(&ssm, &instance, "0").await, Err("InvalidParameters".to_string()));
    assert_eq!(run_shell(&ssm, &instance, "172801").await, Err("InvalidParameters".to_string()));
    let err = ssm
        .send_command()
        .instance_ids(&instance)
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["true".to_string()])
        .parameters("color", vec!["blue".to_string()])
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameters"));
}

#[tokio::test]
async fn a_command_document_of_the_stack_is_sent_with_its_declared_parameters() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ssm_invocation_delay_seconds": 0}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ssm = emu.ssm().await;
    let content = json!({
        "schemaVersion": "2.2",
        "description": "lifeboat repair",
        "parameters": {
            "mode": {"type": "String", "allowedValues": ["repair", "dry-run"]},
            "timeout": {"type": "String", "default": "600", "allowedPattern": "^[0-9]{1,5}$"}
        },
        "mainSteps": [{
            "action": "aws:runShellScript",
            "name": "repair",
            "inputs": {"runCommand": ["lifeboat-repair.sh --{{ mode }}"], "timeoutSeconds": "{{ timeout }}"}
        }]
    });
    ssm.create_document()
        .name("lifeboat-repair")
        .content(content.to_string())
        .document_type(aws_sdk_ssm::types::DocumentType::Command)
        .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
        .send()
        .await
        .unwrap();
    let send = async |params: &[(&str, &str)], document: &str| -> Result<String, String> {
        let mut call = ssm.send_command().instance_ids(&instance).document_name(document);
        for (k, v) in params {
            call = call.parameters(*k, vec![v.to_string()]);
        }
        let out = call.send().await.map_err(|e| e.code().unwrap_or_default().to_string())?;
        Ok(out.command().unwrap().command_id().unwrap().to_string())
    };
    let refused = |code: &str| Err::<String, String>(code.to_string());
    assert!(send(&[("mode", "repair")], "lifeboat-repair").await.is_ok());
    assert_eq!(send(&[], "lifeboat-repair").await, refused("InvalidParameters"), "mode has no default");
    assert_eq!(send(&[("mode", "rebuild")], "lifeboat-repair").await, refused("InvalidParameters"));
    assert_eq!(send(&[("mode", "repair"), ("timeout", "ten")], "lifeboat-repair").await, refused("InvalidParameters"));
    assert_eq!(send(&[("mode", "repair"), ("node", "x")], "lifeboat-repair").await, refused("InvalidParameters"));
    assert_eq!(send(&[("mode", "repair")], "lifeboat-missing").await, refused("InvalidDocument"));

    // Its timeoutSeconds comes from its own parameter.
    emu.control("POST", "/lifeboat/config", &json!({"command_results": [{"seconds": 5}]}));
    let command = send(&[("mode", "repair"), ("timeout", "1")], "lifeboat-repair").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(invocation(&ssm, &command, &instance).await.status().unwrap().as_str(), "TimedOut");
}

#[tokio::test]
async fn an_agent_without_an_instance_profile_never_registers_when_asked_to_be_strict() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ssm_requires_instance_profile": true}));
    let (status, body) = emu.query("iam", "Action=CreateInstanceProfile&Version=2010-05-08&InstanceProfileName=node");
    assert_eq!(status, 200, "{body}");
    let subnet = emu.subnet().await;
    let bare = emu.launch(&subnet, &[]).await;
    let out = emu
        .ec2()
        .await
        .run_instances()
        .image_id(BASE_AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .iam_instance_profile(aws_sdk_ec2::types::IamInstanceProfileSpecification::builder().name("node").build())
        .send()
        .await
        .unwrap();
    let profiled = out.instances()[0].instance_id().unwrap().to_string();
    assert_eq!(ping_status(&emu, &bare).await, None);
    assert_eq!(ping_status(&emu, &profiled).await.as_deref(), Some("Online"));
    assert_eq!(run_shell(&emu.ssm().await, &bare, "600").await, Err("InvalidInstanceId".to_string()));
}
