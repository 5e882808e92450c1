//! Least privilege and the deployment, checked offline by infra/check_stack.py
//! (run with the deploy tools' Python, `make deploy-venv`): for each function,
//! every AWS operation its code path makes (as the code declares them: its
//! ports' operations in the contract manifest, held to the calls the emulator
//! sees by tests/tests/faults.rs) is granted on every
//! resource type the Service Authorization Reference says AWS authorizes, with
//! condition keys AWS defines for that action and resource type, and nothing
//! else; tag guards, the topic's key, the SSM documents, the alarms, the
//! parameters and the outputs follow the template's stated rules. Both the SAM
//! template and the per-function policies for `cargo lambda deploy`.
//!
//! Each tag write the code declares (lifeboat_core::tags::writes, the manifest
//! `make lint-infra` prints with lifeboat-core's contract example) must be
//! allowed by its function's policy, as IAM evaluates it.
//!
//! The mutant tests feed the checker deliberately wrong documents (a missing
//! resource type, a misspelt condition key, an extra action, one per numbered
//! rule) and assert it fails, naming the fault: the check is proven to bite.

use lifeboat_core::relaunch::{COMMAND_TIMEOUT_SECONDS, HEALTH_TIMEOUT_SECONDS, REPAIR_TIMEOUT_SECONDS};
use lifeboat_tests::workspace_root;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

const POLICIES: [&str; 3] =
    ["iam-policy-scheduled-backup.json", "iam-policy-retention-pruner.json", "iam-policy-interruption-handler.json"];

fn python() -> PathBuf {
    let python = workspace_root().join(".venv-deploy/bin/python");
    assert!(
        python.exists() && workspace_root().join(".venv-deploy/sar").exists(),
        "{} is missing: run `make deploy-venv` (the deploy tools and the Service Authorization Reference data)",
        python.display()
    );
    python
}

/// The values the handler sends to the stack's documents, from its own constants.
fn handler_sends() -> Vec<String> {
    vec![
        format!("repair=--timeout {REPAIR_TIMEOUT_SECONDS}"),
        format!("repair=--quarantine --timeout {REPAIR_TIMEOUT_SECONDS}"),
        // repair.rs: after an image fallback.
        format!("repair=--from-image --timeout {REPAIR_TIMEOUT_SECONDS}"),
        // drill.rs: the Kubernetes node name, then the health check's budget.
        format!("health=k8s-master --timeout {HEALTH_TIMEOUT_SECONDS}"),
        format!("executionTimeout={COMMAND_TIMEOUT_SECONDS}"),
    ]
}

/// What the code declares, as the contract example prints it, in a file.
fn manifest() -> &'static PathBuf {
    static MANIFEST: OnceLock<PathBuf> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("lifeboat-contract-{}.json", std::process::id()));
        std::fs::write(&path, lifeboat_core::contract::manifest().to_string()).unwrap();
        path
    })
}

fn check<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let mut command = Command::new(python());
    command.arg(workspace_root().join("infra/check_stack.py")).args(args).arg("--manifest").arg(manifest());
    for value in handler_sends() {
        command.arg("--handler-sends").arg(value);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn the_template_and_the_cargo_lambda_policies_pass_the_check() {
    let output = check::<&str>(&[]);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn the_ssm_documents_are_the_scripts_the_handler_sends() {
    let status = Command::new("python3")
        .arg(workspace_root().join("infra/sync-repair-document.py"))
        .arg("--check")
        .arg("--contract")
        .arg(manifest())
        .status()
        .unwrap();
    assert!(status.success(), "run `make infra` to copy the scripts into infra/template.yaml");
}

#[test]
fn the_documents_admit_what_the_handler_sends_and_nothing_a_shell_reads_otherwise() {
    let accepts = |document: &str, param: &str, value: &str| {
        Command::new(python())
            .arg(workspace_root().join("infra/check_stack.py"))
            .args(["--document-accepts", document, param, value])
            .status()
            .unwrap()
            .success()
    };
    for sent in handler_sends() {
        let (document, value) = sent.split_once('=').unwrap();
        let documents: &[&str] = if document == "executionTimeout" { &["repair", "health"] } else { &[document] };
        for d in documents {
            let param = if document == "executionTimeout" { "executionTimeout" } else { "args" };
            assert!(accepts(d, param, value), "{d} rejects {param}={value:?}");
        }
    }
    for hostile in [
        "--timeout 480; reboot",
        "--timeout $(reboot)",
        "--timeout `reboot`",
        "--timeout 480 | sh",
        "--timeout 480\nreboot",
        "--quarantine --timeout 480 && curl x",
    ] {
        assert!(!accepts("repair", "args", hostile), "repair admits {hostile:?}");
    }
    for hostile in ["k8s-master; reboot --timeout 120", "$(reboot) --timeout 120", "K8S --timeout 120"] {
        assert!(!accepts("health", "args", hostile), "health admits {hostile:?}");
    }
    assert!(!accepts("repair", "executionTimeout", "600; reboot"));
}

// ---- mutants: each must fail the check, and say why.

static MUTANT: AtomicUsize = AtomicUsize::new(0);

/// A copy of infra/ (template and policies) with `from` replaced by `to`
/// (exactly once) in `file`; the checker's failure output.
fn mutant(file: &str, from: &str, to: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "lifeboat-iam-{}-{}",
        std::process::id(),
        MUTANT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let infra = workspace_root().join("infra");
    for name in POLICIES.iter().chain(&["template.yaml"]) {
        std::fs::copy(infra.join(name), dir.join(name)).unwrap();
    }
    let original = std::fs::read_to_string(infra.join(file)).unwrap();
    assert_eq!(original.matches(from).count(), 1, "{file}: the mutated text must occur exactly once: {from:?}");
    std::fs::write(dir.join(file), original.replacen(from, to, 1)).unwrap();
    let output =
        check(&[PathBuf::from("--template"), dir.join("template.yaml"), PathBuf::from("--policies-dir"), dir.clone()]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!output.status.success(), "the check passed a mutant of {file}: {from:?} -> {to:?}");
    text(&output)
}

fn fails_with(output: &str, expected: &str) {
    assert!(output.contains(expected), "expected {expected:?} in:\n{output}");
}

const HANDLER_KEY_PAIR: &str =
    "                - !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:key-pair/*\n";

#[test]
fn a_missing_resource_type_fails() {
    let out = mutant("template.yaml", HANDLER_KEY_PAIR, "");
    fails_with(&out, "interruption-handler calls ec2:RunInstances but its role grants it no key-pair");
    let out = mutant(
        "iam-policy-retention-pruner.json",
        r#""Resource": ["arn:${Partition}:ec2:${Region}::image/*", "arn:${Partition}:ec2:${Region}::snapshot/*"],"#,
        r#""Resource": ["arn:${Partition}:ec2:${Region}::image/*"],"#,
    );
    fails_with(&out, "retention-pruner calls ec2:DeleteSnapshot but its role grants it no snapshot");
}

#[test]
fn a_misspelt_condition_key_fails() {
    let out = mutant("template.yaml", "{ec2:MetadataHttpTokens: required}", "{ec2:MetadataHttpToken: required}");
    fails_with(&out, "condition key ec2:metadatahttptoken is not defined for ec2:RunInstances");
    let out = mutant(
        "iam-policy-interruption-handler.json",
        r#"{"StringLike": {"ssm:resourceTag/lifeboat:drill-of": "?*"}}"#,
        r#"{"StringLike": {"ssm:ResourceTags/lifeboat:drill-of": "?*"}}"#,
    );
    fails_with(&out, "condition key ssm:resourcetags/lifeboat:drill-of is not defined for ssm:SendCommand");
}

#[test]
fn a_condition_key_aws_does_not_define_for_that_resource_type_fails() {
    // The reference defines no resource-tag key for the volume of
    // CreateReplaceRootVolumeTask: such a condition would never match.
    let task = "                - !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:replace-root-volume-task/*\n";
    let out = mutant(
        "template.yaml",
        task,
        &format!(
            "{task}              Condition:\n                StringLike: {{aws:ResourceTag/lifeboat:node: \"?*\"}}\n"
        ),
    );
    fails_with(&out, "is not defined for ec2:CreateReplaceRootVolumeTask on replace-root-volume-task, volume");
}

#[test]
fn an_action_the_code_never_calls_fails() {
    let out = mutant(
        "template.yaml",
        "Action: [ec2:DescribeInstances, ec2:DescribeImages, ec2:DescribeVolumes]\n",
        "Action: [ec2:DescribeInstances, ec2:DescribeImages, ec2:DescribeVolumes, ec2:DescribeSnapshots]\n",
    );
    fails_with(&out, "scheduled-backup's role allows ec2:DescribeSnapshots, which its code never calls");
    let out = mutant(
        "iam-policy-retention-pruner.json",
        r#""Action": "ec2:DeleteVolume","#,
        r#""Action": ["ec2:DeleteVolume", "ec2:DetachVolume"],"#,
    );
    fails_with(&out, "retention-pruner's role allows ec2:DetachVolume, which its code never calls");
}

#[test]
fn resource_star_on_an_action_authorized_per_resource_fails() {
    let out = mutant(
        "iam-policy-interruption-handler.json",
        r#""Sid": "TerminateOnlyDrillClones",
      "Effect": "Allow",
      "Action": "ec2:TerminateInstances",
      "Resource": "arn:${Partition}:ec2:${Region}:${Account}:instance/*","#,
        r#""Sid": "TerminateOnlyDrillClones",
      "Effect": "Allow",
      "Action": "ec2:TerminateInstances",
      "Resource": "*","#,
    );
    fails_with(&out, "Resource \"*\" for ec2:TerminateInstances, which AWS authorizes per resource");
}

#[test]
fn rule_1_the_topic_needs_a_customer_managed_key_cloudwatch_may_use() {
    let out = mutant("template.yaml", "KmsMasterKeyId: !Ref TopicKey", "KmsMasterKeyId: alias/aws/sns");
    fails_with(&out, "KmsMasterKeyId must be a customer-managed AWS::KMS::Key");
    let out = mutant(
        "template.yaml",
        "            Principal: {Service: cloudwatch.amazonaws.com}\n            Action: [kms:Decrypt, kms:GenerateDataKey*]\n            Resource: \"*\"\n            Condition:\n              StringEquals: {aws:SourceAccount: !Ref AWS::AccountId}\n",
        "            Principal: {Service: cloudwatch.amazonaws.com}\n            Action: [kms:Decrypt, kms:GenerateDataKey*]\n            Resource: \"*\"\n            Condition:\n",
    );
    fails_with(&out, "CloudWatch's statement needs aws:SourceAccount and aws:SourceArn");
    let out = mutant(
        "template.yaml",
        "      AlarmName: !Sub ${AWS::StackName}-drill-failed\n",
        "      AlarmName: drill-failed\n",
    );
    fails_with(&out, "is not admitted by TopicKey's aws:SourceArn");
}

#[test]
fn rule_2_the_node_role_is_required_and_a_role_arn() {
    let out = mutant(
        "template.yaml",
        "  NodeRoleArn:\n    Type: String\n",
        "  NodeRoleArn:\n    Type: String\n    Default: \"\"\n",
    );
    fails_with(&out, "parameter NodeRoleArn must have no Default");
    let out = mutant(
        "template.yaml",
        r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$",
        r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:.+$",
    );
    fails_with(&out, "AllowedPattern admits 'arn:aws:iam::123456789012:instance-profile/k8s'");
}

#[test]
fn rule_3_ebs_keys_only_through_ec2_with_grants_for_aws_resources() {
    let out = mutant("template.yaml", "                  Bool: {kms:GrantIsForAWSResource: \"true\"}\n", "");
    fails_with(&out, "kms:CreateGrant on key without its guard");
    let out = mutant(
        "iam-policy-interruption-handler.json",
        r#""Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*"],
      "Resource": "${EbsKmsKeyArns}",
      "Condition": {"StringEquals": {"kms:ViaService": "ec2.${Region}.${UrlSuffix}"}}"#,
        r#""Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*"],
      "Resource": "${EbsKmsKeyArns}""#,
    );
    fails_with(&out, "without its guard (kms:ViaService)");
}

#[test]
fn rule_4_no_reserved_concurrency() {
    let out =
        mutant("template.yaml", "      Timeout: 900\n", "      Timeout: 900\n      ReservedConcurrentExecutions: 1\n");
    fails_with(&out, "ReservedConcurrentExecutions must not be set");
}

#[test]
fn rule_5_the_no_backup_alarm_waits_for_a_backup_to_be_expected() {
    let out = mutant("template.yaml", "TreatMissingData: missing", "TreatMissingData: breaching");
    fails_with(&out, "must treat missing data as missing");
    let out = mutant("template.yaml", "      InsufficientDataActions: [!Ref Topic]\n", "");
    fails_with(&out, "must notify on ALARM and on INSUFFICIENT_DATA");
}

#[test]
fn rule_5b_the_failures_answered_rather_than_raised_have_their_alarm() {
    // The metric as the code names it (lifeboat_core::answer::PERMANENT_FAILURE, via the manifest).
    let out = mutant("template.yaml", "      MetricName: PermanentFailure\n", "      MetricName: PermanentFailures\n");
    fails_with(&out, "expected an alarm summing lifeboat/PermanentFailure without dimensions");
}

#[test]
fn rule_6_the_node_tag_is_fixed_and_guards_every_destructive_grant() {
    let out = mutant(
        "template.yaml",
        "        LIFEBOAT_NODE_TAG: lifeboat:node\n",
        "        LIFEBOAT_NODE_TAG: !Ref DrillNode\n",
    );
    fails_with(&out, "LIFEBOAT_NODE_TAG must be the literal lifeboat:node");
    let out = mutant(
        "template.yaml",
        "                - !Sub arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*\n              Condition:\n                StringLike: {aws:ResourceTag/lifeboat:node: \"?*\"}\n            - Sid: DeleteOnlyNodeVolumes",
        "                - !Sub arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*\n            - Sid: DeleteOnlyNodeVolumes",
    );
    fails_with(&out, "ec2:DeregisterImage on image without its guard (aws:ResourceTag/lifeboat:node)");
    let out = mutant(
        "template.yaml",
        "              Action: ec2:AttachVolume\n              Resource:\n                - !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*\n                - !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*\n              Condition:\n                StringLike: {aws:ResourceTag/lifeboat:node: \"?*\"}\n",
        "              Action: ec2:AttachVolume\n              Resource:\n                - !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*\n                - !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*\n",
    );
    fails_with(&out, "ec2:AttachVolume on instance without its guard");
    let out = mutant(
        "template.yaml",
        "              Resource: !Sub arn:${AWS::Partition}:ec2:${AWS::Region}::image/*\n              Condition:\n                StringEquals: {ec2:Owner: !Ref AWS::AccountId}\n                StringLike: {aws:ResourceTag/lifeboat:node: \"?*\"}\n            # A drill's root volume",
        "              Resource: !Sub arn:${AWS::Partition}:ec2:${AWS::Region}::image/*\n            # A drill's root volume",
    );
    fails_with(&out, "ec2:CreateReplaceRootVolumeTask on image without its guard");
}

#[test]
fn rule_7_only_the_stack_documents_with_tight_patterns() {
    let out = mutant(
        "template.yaml",
        "document/${AWS::StackName}-health\n",
        "document/${AWS::StackName}-health\n                - !Sub arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:document/AWS-RunShellScript\n",
    );
    fails_with(&out, "no IAM statement may name AWS-RunShellScript");
    let out = mutant(
        "template.yaml",
        "allowedPattern: '^(--dry-run )?(--quarantine )?(--from-image )?--timeout [1-9][0-9]{0,4}$'",
        "allowedPattern: '^[-a-z0-9 ;$()]*$'",
    );
    fails_with(&out, "args admits '--timeout $(id)'");
    let out = mutant("template.yaml", "          LIFEBOAT_SSM_DOCUMENTS: !Ref AWS::StackName\n", "");
    fails_with(&out, "LIFEBOAT_SSM_DOCUMENTS must be the stack name");
    let out = mutant(
        "template.yaml",
        "              Condition:\n                StringLike: {ssm:resourceTag/lifeboat:node: \"?*\"}\n",
        "",
    );
    fails_with(&out, "ssm:SendCommand on instance without its guard");
}

#[test]
fn rule_8_launches_only_from_own_node_backups_imdsv2_only_in_the_vpc() {
    let out = mutant(
        "template.yaml",
        "              Action: ec2:RunInstances\n              Resource: !Sub arn:${AWS::Partition}:ec2:${AWS::Region}::image/*\n              Condition:\n                StringEquals: {ec2:Owner: !Ref AWS::AccountId}\n",
        "              Action: ec2:RunInstances\n              Resource: !Sub arn:${AWS::Partition}:ec2:${AWS::Region}::image/*\n              Condition:\n",
    );
    fails_with(&out, "ec2:RunInstances on image without its guard");
    let out = mutant("template.yaml", "                StringEquals: {ec2:MetadataHttpTokens: required}\n", "");
    fails_with(&out, "ec2:MetadataHttpTokens = required");
    let out = mutant(
        "template.yaml",
        "                - StringEquals: {ec2:Vpc: !Sub \"arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${VpcId}\"}\n                - !Ref AWS::NoValue",
        "                - !Ref AWS::NoValue\n                - !Ref AWS::NoValue",
    );
    fails_with(&out, "ec2:RunInstances on subnet without its guard (ec2:Vpc");
    let out = mutant(
        "template.yaml",
        "                ForAllValues:StringEquals:\n                  aws:TagKeys: [lifeboat:state-source, lifeboat:state-as-of, lifeboat:root-image, lifeboat:root-lost]\n",
        "",
    );
    fails_with(&out, "ec2:CreateTags on instance without its guard");
    let out = mutant(
        "iam-policy-scheduled-backup.json",
        r#""Condition": {"StringEquals": {"ec2:CreateAction": "CreateImage"}}"#,
        r#""Condition": {"StringEquals": {"aws:RequestedRegion": "${Region}"}}"#,
    );
    fails_with(&out, "ec2:CreateTags on image without its guard");
}

#[test]
fn rule_9_no_hard_coded_partition_anywhere() {
    let out = mutant(
        "template.yaml",
        "TerminateOnlyDrillClones\n              Effect: Allow\n              Action: ec2:TerminateInstances\n              Resource: !Sub arn:${AWS::Partition}:ec2",
        "TerminateOnlyDrillClones\n              Effect: Allow\n              Action: ec2:TerminateInstances\n              Resource: !Sub arn:aws:ec2",
    );
    fails_with(&out, "a hard-coded arn:aws: partition");
    fails_with(&out, "grants ec2:TerminateInstances on no resource of a type AWS authorizes for it");
    let out = mutant(
        "iam-policy-retention-pruner.json",
        r#""Resource": "arn:${Partition}:ec2:${Region}:${Account}:volume/*","#,
        r#""Resource": "arn:aws:ec2:${Region}:${Account}:volume/*","#,
    );
    fails_with(&out, "iam-policy-retention-pruner.json: a hard-coded arn:aws: partition");
}

#[test]
fn rule_10_the_operator_may_invoke_the_handler() {
    let out = mutant(
        "template.yaml",
        "      FunctionName: !Ref InterruptionHandlerFunction\n      Principal: !Ref OperatorPrincipalArn\n",
        "      FunctionName: !Ref RetentionPrunerFunction\n      Principal: !Ref OperatorPrincipalArn\n",
    );
    fails_with(&out, "interruption-handler must grant it lambda:InvokeFunction");
}

#[test]
fn rule_11_parameters_dashboard_experiment_metadata_and_outputs() {
    let out = mutant(
        "template.yaml",
        "    ConstraintDescription: must be a security group id (sg-0123456789abcdef0), or empty.\n",
        "",
    );
    fails_with(
        &out,
        "parameter DrillSecurityGroup: needs AllowedValues, or AllowedPattern with a ConstraintDescription",
    );
    let out = mutant("template.yaml", "MetricName=\\\"ImagesPruned\\\"", "MetricName=\\\"Pruned\\\"");
    fails_with(&out, "no widget shows the ImagesPruned metric");
    let out = mutant(
        "template.yaml",
        "    Type: AWS::FIS::ExperimentTemplate\n    Condition: HasInterruptNode\n",
        "    Type: AWS::FIS::ExperimentTemplate\n",
    );
    fails_with(&out, "must be created only when asked");
    let out = mutant("template.yaml", "    SemanticVersion: 0.1.0\n", "    SemanticVersion: 9.9.9\n");
    fails_with(&out, "is not the workspace's version");
    let out = mutant(
        "template.yaml",
        "  DashboardName:\n    Description: The CloudWatch dashboard.\n    Value: !Ref Dashboard\n",
        "",
    );
    fails_with(&out, "output DashboardName is missing");
    let out = mutant("template.yaml", "    LicenseUrl: ../LICENSE\n", "    LicenseUrl: ../NO-LICENSE\n");
    fails_with(&out, "LicenseUrl ../NO-LICENSE does not exist");
    let out = mutant(
        "template.yaml",
        "                Action: ec2:SendSpotInstanceInterruptions\n                Resource: !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*\n                Condition:\n                  StringEquals: {aws:ResourceTag/lifeboat:node: !Ref InterruptNode}\n",
        "                Action: ec2:SendSpotInstanceInterruptions\n                Resource: !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*\n",
    );
    fails_with(&out, "ec2:SendSpotInstanceInterruptions on instance without its guard");
}

#[test]
fn a_tag_key_a_function_writes_that_its_policy_refuses_fails() {
    let out = mutant(
        "iam-policy-scheduled-backup.json",
        r#""aws:TagKeys": ["lifeboat:node", "lifeboat:instance", "lifeboat:device", "lifeboat:volume"]"#,
        r#""aws:TagKeys": ["lifeboat:node", "lifeboat:instance", "lifeboat:device"]"#,
    );
    fails_with(
        &out,
        "scheduled-backup: scheduled-backup's tag write is refused: ec2:CreateTags on volume with lifeboat:node, \
         lifeboat:instance, lifeboat:device, lifeboat:volume: refused lifeboat:volume",
    );
    let out = mutant(
        "template.yaml",
        "aws:TagKeys: [lifeboat:node, lifeboat:instance, lifeboat:device, lifeboat:volume]\n\n  # ---- retention-pruner",
        "aws:TagKeys: [lifeboat:node, lifeboat:instance, lifeboat:volume]\n\n  # ---- retention-pruner",
    );
    fails_with(&out, "scheduled-backup's tag write is refused: ec2:CreateTags on volume");
    fails_with(&out, "refused lifeboat:device");
    // A creating call's tags: the snapshots of a backup, without ec2:CreateAction CreateImage.
    let out = mutant(
        "iam-policy-scheduled-backup.json",
        r#""Resource": ["arn:${Partition}:ec2:${Region}::image/*", "arn:${Partition}:ec2:${Region}::snapshot/*"],
      "Condition": {"StringEquals": {"ec2:CreateAction": "CreateImage"}}"#,
        r#""Resource": ["arn:${Partition}:ec2:${Region}::image/*"],
      "Condition": {"StringEquals": {"ec2:CreateAction": "CreateImage"}}"#,
    );
    fails_with(
        &out,
        "scheduled-backup's tag write is refused: CreateImage's tags (ec2:CreateTags, ec2:CreateAction=CreateImage) on snapshot",
    );
}

#[test]
fn rule_12_drill_clones_launch_with_their_own_role_and_network_only() {
    // A clone launched without the hop limit, or without the drill profile.
    let out = mutant("template.yaml", "                NumericEquals: {ec2:MetadataHttpPutResponseHopLimit: 1}\n", "");
    fails_with(&out, "LaunchClonesIsolated: ec2:RunInstances on instance without its guard");
    fails_with(&out, "ec2:MetadataHttpPutResponseHopLimit = 1");
    let out = mutant("template.yaml", "                  ec2:InstanceProfile: !GetAtt DrillInstanceProfile.Arn\n", "");
    fails_with(&out, "ec2:InstanceProfile = the drill's instance profile");
    let out = mutant(
        "iam-policy-interruption-handler.json",
        r#""NumericEquals": {"ec2:MetadataHttpPutResponseHopLimit": 1},"#,
        "",
    );
    fails_with(
        &out,
        "iam-policy-interruption-handler.json [defaults] interruption-handler statement LaunchClonesIsolated",
    );
    // A node launch that could be tagged as a drill (and so skip its conditions).
    let out = mutant("template.yaml", "                \"Null\": {aws:RequestTag/lifeboat:drill-of: \"true\"}\n", "");
    fails_with(&out, "LaunchNodesImdsV2Only: ec2:RunInstances on instance without its guard");
    // The drill role passed to any service, or another role passed.
    let out = mutant(
        "template.yaml",
        "              Resource: !GetAtt DrillInstanceRole.Arn\n              Condition:\n                StringEquals: {iam:PassedToService: [ec2.amazonaws.com, ec2.amazonaws.com.cn]}\n",
        "              Resource: !GetAtt DrillInstanceRole.Arn\n",
    );
    fails_with(&out, "PassOnlyTheDrillRole: iam:PassRole on role without its guard");
    let out = mutant(
        "iam-policy-interruption-handler.json",
        r#""Resource": "${DrillRoleArn}","#,
        r#""Resource": "arn:${Partition}:iam::${Account}:role/*","#,
    );
    fails_with(&out, "iam:PassRole must be granted on ${NodeRoleArn} alone, then on ${DrillRoleArn} alone");
    // The drill role: nothing but the SSM agent's calls, trusted by EC2 alone.
    let out = mutant(
        "template.yaml",
        "                  - ec2messages:SendReply\n",
        "                  - ec2messages:SendReply\n                  - ssm:SendCommand\n",
    );
    fails_with(
        &out,
        "DrillInstanceRole statement SsmAgentMessages: ssm:SendCommand is more than an SSM managed instance needs",
    );
    let out = mutant(
        "template.yaml",
        "                Action: ssm:UpdateInstanceInformation\n",
        "                Action: ssm:*\n",
    );
    fails_with(&out, "DrillInstanceRole statement SsmAgentRegisters");
    let out = mutant(
        "template.yaml",
        "            Principal: {Service: ec2.amazonaws.com}\n            Action: sts:AssumeRole\n      Policies:\n        - PolicyName: ssm-managed-instance",
        "            Principal: {Service: lambda.amazonaws.com}\n            Action: sts:AssumeRole\n      Policies:\n        - PolicyName: ssm-managed-instance",
    );
    fails_with(&out, "DrillInstanceRole trust policy: only ec2.amazonaws.com may assume it");
    // The handler is given the drill's profile and group as the stack makes them.
    let out =
        mutant("template.yaml", "          LIFEBOAT_DRILL_INSTANCE_PROFILE: !GetAtt DrillInstanceProfile.Arn\n", "");
    fails_with(&out, "LIFEBOAT_DRILL_INSTANCE_PROFILE must be DrillInstanceProfile's Arn");
    let out = mutant(
        "template.yaml",
        "        - {IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: 0.0.0.0/0, Description: HTTPS to SSM}\n",
        "        - {IpProtocol: \"-1\", CidrIp: 0.0.0.0/0, Description: everything}\n",
    );
    fails_with(&out, "DrillQuarantineGroup: in VpcId, no ingress, egress only tcp 443 and tcp/udp 53");
    let out = mutant(
        "template.yaml",
        "!If [MakesDrillSecurityGroup, !GetAtt DrillQuarantineGroup.GroupId, !Ref DrillSecurityGroup]",
        "!Ref DrillSecurityGroup",
    );
    fails_with(&out, "LIFEBOAT_DRILL_SECURITY_GROUP must be DrillSecurityGroup, or the stack's DrillQuarantineGroup");
}
