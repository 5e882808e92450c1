//! The KMS keys of the node's volumes.

use super::*;

#[test]
fn an_aws_managed_key_needs_no_place_in_ebs_kms_key_arns() {
    let mut f = facts();
    let aws_ebs = "arn:aws:kms:eu-west-1:1:key/ebs";
    node(&mut f).volumes.as_mut().unwrap()[1] =
        VolumeCrypto { id: "vol-data".into(), encrypted: true, kms_key_id: Some(aws_ebs.into()) };
    node(&mut f).keys.push(KeyFacts {
        id: aws_ebs.into(),
        volumes: vec!["vol-data".into()],
        key: Ok(KmsKey { arn: aws_ebs.into(), manager: "AWS".into() }),
        policy: None,
        grants: None,
    });
    assert_eq!(one(&f, "kms").status, Status::Pass);
    assert_eq!(one(&f, "spot-kms").status, Status::Pass, "aws/ebs lets the account's principals use it through EC2");
    // Unknown (DescribeKey refused): still the warning that names the parameter.
    node(&mut f).keys[1].key = Err("AccessDeniedException: not authorized".into());
    let c = one(&f, "kms");
    assert_eq!(c.status, Status::Warn);
    assert!(c.fix.unwrap().contains("kms:DescribeKey"));
}

#[test]
fn a_customer_key_whose_policy_leaves_out_the_spot_role_fails_with_the_statement_to_add() {
    let mut f = facts();
    node(&mut f).keys = vec![customer_key(default_key_policy())];
    let c = one(&f, "spot-kms");
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains(&format!("neither the key policy nor a grant of {KEY_A} (vol-root) allows AWSServiceRoleForEC2Spot kms:Decrypt, kms:Encrypt")), "{c:?}");
    assert!(c.detail.contains("terminated at once"), "{c:?}");
    let fix = c.fix.unwrap();
    // The exact statement, in the node's partition and account, and the
    // grant the EC2 User Guide documents.
    let statement = serde_json::to_string_pretty(&spot_kms::statement(SPOT_ROLE_ARN)).unwrap();
    assert!(fix.contains(&statement), "{fix}");
    for action in [
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey\"",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:CreateGrant",
        "kms:DescribeKey",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
    ] {
        assert!(statement.contains(action), "{action}");
    }
    assert!(
        fix.contains(&format!(
            "aws kms create-grant --region eu-west-1 --key-id {KEY_A} --grantee-principal {SPOT_ROLE_ARN}"
        )),
        "{fix}"
    );
    assert!(fix.contains("put-key-policy"), "{fix}");

    // In the partition and account of the node.
    node(&mut f).extras.as_mut().unwrap().owner_id = Some("222233334444".into());
    assert!(
        one(&f, "spot-kms")
            .fix
            .unwrap()
            .contains("arn:aws:iam::222233334444:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot")
    );
}

#[test]
fn the_statement_or_the_grant_aws_documents_passes() {
    let f = facts();
    let c = one(&f, "spot-kms");
    assert_eq!(c.status, Status::Pass);
    assert_eq!(c.detail, format!("AWSServiceRoleForEC2Spot may use {KEY_A}"));

    let mut f = facts();
    let mut by_grant = customer_key(default_key_policy());
    by_grant.grants = Some(Ok(vec![KeyGrant {
        grantee: SPOT_ROLE_ARN.into(),
        operations: spot_kms::SPOT_KEY_OPERATIONS.iter().map(|o| o.to_string()).collect(),
        constrained: false,
    }]));
    node(&mut f).keys = vec![by_grant];
    let c = one(&f, "spot-kms");
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.detail.ends_with("(by a grant)"));
}

#[test]
fn on_demand_relaunches_need_no_spot_access_to_the_keys() {
    let mut f = facts();
    node(&mut f).keys = vec![customer_key(default_key_policy())];
    let mut s = stack();
    s.parameters.insert(stack::CAPACITY.into(), "spot".into());
    f.stack = Ok(Some(s.clone()));
    assert_eq!(one(&f, "spot-kms").status, Status::Fail, "spot only still launches spot");
    s.parameters.insert(stack::CAPACITY.into(), "on-demand".into());
    f.stack = Ok(Some(s));
    let c = one(&f, "spot-kms");
    assert_eq!(c.status, Status::Pass);
    assert!(c.detail.contains("on-demand only"));
}

#[test]
fn a_key_policy_preflight_could_not_read_is_a_warning_with_the_statement() {
    let mut f = facts();
    let mut k = customer_key(String::new());
    k.policy = Some(Err("AccessDeniedException: not authorized to perform kms:GetKeyPolicy".into()));
    node(&mut f).keys = vec![k];
    let c = one(&f, "spot-kms");
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("could not read the key policy"), "{c:?}");
    assert!(c.fix.unwrap().contains(SPOT_ROLE_ARN));
}
