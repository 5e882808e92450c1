//! Injected faults: retried by the SDK or surfaced with their code.

use super::*;

#[tokio::test]
async fn injected_faults_are_retried_by_the_sdk_or_surface_with_their_code() {
    let emu = Emulator::new();
    let ec2 = emu.ec2().await;
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "DescribeVpcs", "code": "RequestLimitExceeded", "count": 2}),
    );
    ec2.describe_vpcs().send().await.expect("throttling is retried");
    assert_eq!(emu.calls("DescribeVpcs"), 3);

    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "DescribeSubnets", "code": "UnauthorizedOperation", "status": 403, "count": 1}),
    );
    let err = ec2.describe_subnets().send().await.unwrap_err();
    assert_eq!(err.code(), Some("UnauthorizedOperation"));
    assert_eq!(emu.calls("DescribeSubnets"), 1, "a client error is not retried");
}
