//! How a replacement on the kept interface reaches SSM and the operator: an
//! Elastic IP on the interface (a public IP that is not elastic stays with
//! the dead instance), a NAT route, or VPC endpoints for the three services
//! the agent talks to.

use super::{Check, NodeFacts};

const SSM_SERVICES: [&str; 3] = ["ssm", "ssmmessages", "ec2messages"];

pub(super) fn network_path(n: &NodeFacts, region: &str) -> Check {
    const ID: &str = "network-path";
    let eni = n.instance.primary_interface.as_ref().map_or("the interface", |a| a.interface_id.as_str());
    let (eip, routes, endpoints) = match (&n.elastic_ip, &n.routes, &n.endpoints) {
        (Ok(e), Ok(r), Ok(v)) => (e, r, v),
        (e, r, v) => {
            let errors: Vec<&String> =
                [e.as_ref().err(), r.as_ref().err(), v.as_ref().err()].into_iter().flatten().collect();
            let errors: Vec<&str> = errors.into_iter().map(String::as_str).collect();
            return Check::warn(
                ID,
                format!("could not read the network: {}", errors.join("; ")),
                "allow ec2:DescribeAddresses, ec2:DescribeRouteTables, ec2:DescribeVpcEndpoints",
            );
        }
    };
    let default = routes.iter().find(|r| r.destination == "0.0.0.0/0").map(|r| r.target.as_str());
    let missing: Vec<&str> = SSM_SERVICES
        .into_iter()
        .filter(|s| !endpoints.iter().any(|e| e == &format!("com.amazonaws.{region}.{s}")))
        .collect();
    match (eip, default) {
        (Some(ip), Some(t)) if t.starts_with("igw-") => {
            return Check::pass(ID, format!("Elastic IP {ip} on {eni} (kept with it) and a route to {t}"));
        }
        (_, Some(t)) if t.starts_with("nat-") => {
            return Check::pass(
                ID,
                format!("the subnet routes 0.0.0.0/0 to {t}: the replacement reaches SSM through NAT"),
            );
        }
        _ => {}
    }
    if missing.is_empty() {
        return Check::pass(ID, "VPC endpoints for ssm, ssmmessages and ec2messages");
    }
    let why = match default {
        Some(t) if t.starts_with("igw-") => format!(
            "the subnet routes to {t} but {eni} has no Elastic IP: a replacement on the kept interface gets no public IP"
        ),
        Some(t) => format!("the subnet's default route goes to {t}, which lifeboat cannot judge"),
        None => "the subnet has no default route".to_string(),
    };
    let detail = format!("{why}, and the VPC has no endpoint for {}", missing.join(", "));
    let fix = format!(
        "associate an Elastic IP with {eni} (aws ec2 associate-address --network-interface-id {eni} --allocation-id <eipalloc>), \
         or route 0.0.0.0/0 to a NAT gateway, or create interface endpoints com.amazonaws.{region}.{{ssm,ssmmessages,ec2messages}}"
    );
    match default {
        Some(t) if !t.starts_with("igw-") => Check::warn(ID, detail, fix),
        _ => Check::fail(ID, detail, fix),
    }
}
