//! What each command prints for a person.

use crate::interrupt::Recovered;
use crate::invoke::InvokeResult;
use crate::output::{or_dash, table};
use crate::ports::Alarm;
use crate::preflight::{Check, Status};
use crate::status::{self, BootGuard, DrillOutcome, NodeStatus, age};
use chrono::{DateTime, SecondsFormat, Utc};

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn preflight(node: &str, checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let status = match c.status {
                Status::Pass => "pass",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            vec![status.to_string(), c.id.to_string(), c.detail.clone()]
        })
        .collect();
    let mut out = format!("preflight of {node}\n\n{}", table(&["result", "check", "detail"], &rows));
    let fixes: Vec<&Check> = checks.iter().filter(|c| c.status != Status::Pass && c.fix.is_some()).collect();
    if !fixes.is_empty() {
        out.push_str("\nfixes:\n");
        for c in fixes {
            // A fix of several lines (a policy statement) stays in its column.
            let fix = c.fix.as_deref().unwrap_or_default().replace('\n', &format!("\n{:21}", ""));
            out.push_str(&format!("  {:<18} {fix}\n", c.id));
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    out.push_str(&match failed {
        0 => format!("\n{node} is ready for a relaunch ({} checks, {warned} warnings)\n", checks.len()),
        n => format!("\n{n} of {} checks failed: {node} is NOT ready for a relaunch\n", checks.len()),
    });
    out
}

/// `spot`; `on-demand since <time> (<age>): spot refused: <why>` after a
/// relaunch's fallback; `on-demand as launched (no spot fallback recorded)`.
fn market(n: &NodeStatus) -> String {
    match (n.market, &n.market_fallback) {
        (Some("on-demand"), Some(f)) => {
            let since = f.since.as_ref().map_or("an unrecorded time".to_string(), time);
            let age = f.age_seconds.map(|s| format!(" ({} ago)", age(s))).unwrap_or_default();
            format!("on-demand since {since}{age}: spot refused: {}", or_dash(f.reason.as_ref()))
        }
        (Some("on-demand"), None) => "on-demand as launched (no spot fallback recorded)".to_string(),
        (market, _) => or_dash(market),
    }
}

pub fn status(stack: &str, nodes: &[NodeStatus], alarms: &Result<Vec<Alarm>, String>) -> String {
    let mut out = format!("{stack}\n\n");
    for n in nodes {
        let kept = |k: Option<bool>| k.map(|k| if k { "yes" } else { "NO" });
        let backup = n.newest_backup.as_ref().map(|b| {
            format!("{} ({}, {} ago)", b.name, b.image_id, b.age_seconds.map(age).unwrap_or_else(|| "?".into()))
        });
        let relaunch = n.last_relaunch.as_ref().map_or("never".to_string(), |r| {
            format!(
                "replaced {} at {}, state {} as of {}",
                r.replaces,
                or_dash(r.launched.as_ref().map(time)),
                or_dash(r.state_source.as_ref()),
                or_dash(r.state_as_of.as_ref())
            )
        });
        let drill = n.last_drill.as_ref().map_or("never".to_string(), |d| {
            let outcome = if d.outcome == DrillOutcome::Passed { "passed" } else { "FAILED" };
            format!("{outcome} {} on {}", time(&d.at), d.image_id)
        });
        let mut rows = vec![
            vec!["instance".into(), format!("{} ({})", or_dash(n.instance.as_ref()), or_dash(n.state.as_ref()))],
            vec!["type".into(), or_dash(n.instance_type.as_ref())],
            vec!["market".into(), market(n)],
            vec!["private IP".into(), or_dash(n.private_ip.as_ref())],
            vec!["interface kept".into(), or_dash(kept(n.interface_kept))],
            vec!["volumes kept".into(), or_dash(n.volumes_kept.map(|k| format!("{}/{}", k.kept, k.total)))],
            vec!["newest backup".into(), backup.unwrap_or_else(|| "none".into())],
            vec!["backups".into(), n.backups.to_string()],
            vec!["last relaunch".into(), relaunch],
            vec!["last drill".into(), drill],
        ];
        if let Some(g) = &n.boot_guard {
            let guard = if g.is_held() { "HELD" } else { g.guard.as_str() };
            rows.push(vec!["boot guard".into(), format!("{guard}: {}", g.reason)]);
        } else if let Some(e) = &n.boot_guard_error {
            rows.push(vec!["boot guard".into(), format!("console not read: {e}")]);
        }
        out.push_str(&format!(
            "{}\n{}\n",
            n.node,
            table(&["", ""], &rows).lines().skip(2).collect::<Vec<_>>().join("\n")
        ));
        if n.boot_guard.as_ref().is_some_and(BootGuard::is_held) {
            out.push_str(&format!("  fix: kubelet is held on {}: {}\n", n.node, status::HELD_FIX));
        }
        out.push('\n');
    }
    if nodes.is_empty() {
        out.push_str("no node is tagged for lifeboat\n\n");
    }
    match alarms {
        Ok(a) if a.is_empty() => out.push_str("alarms: none found in the stack\n"),
        Ok(a) => {
            let rows: Vec<Vec<String>> = a
                .iter()
                .map(|a| vec![a.name.clone(), a.state.clone(), a.since.as_ref().map(time).unwrap_or_default()])
                .collect();
            out.push_str(&table(&["alarm", "state", "since"], &rows));
        }
        Err(e) => out.push_str(&format!("alarms: {e}\n")),
    }
    out
}

pub fn invoked(o: &InvokeResult) -> String {
    let mut out = format!("{} of {} ({})\n\n", o.action.what(), o.node, o.function);
    if !o.timeline.is_empty() {
        let rows: Vec<Vec<String>> = o
            .timeline
            .iter()
            .map(|s| vec![format!("{:.1} s", s.at_seconds), s.step.clone(), s.detail.clone()])
            .collect();
        out.push_str(&table(&["at", "step", "detail"], &rows));
        out.push('\n');
    }
    if let Some(state) = &o.state {
        out.push_str(&format!("state: {state}\n"));
    }
    out.push_str(&format!("{}: {}\n", if o.passed { "passed" } else { "FAILED" }, o.headline));
    out
}

pub fn recovered(r: &Recovered) -> String {
    let rows: Vec<Vec<String>> = r
        .milestones
        .iter()
        .map(|m| vec![format!("{:.0} s", m.at_seconds), m.step.to_string(), m.detail.clone()])
        .collect();
    format!(
        "interruption of {} ({})\n\n{}\n{} came back as {} in {:.0} s from the warning to a healthy control plane\n\
         state: {} as of {}\n",
        r.node,
        r.old,
        table(&["at", "step", "detail"], &rows),
        r.node,
        r.replacement,
        r.seconds_to_healthy,
        or_dash(r.state_source.as_ref()),
        or_dash(r.state_as_of.as_ref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::MarketFallback;
    use chrono::TimeZone;

    fn node(market: &'static str, fallback: Option<MarketFallback>) -> NodeStatus {
        NodeStatus {
            node: "k8s-master".into(),
            instance: Some("i-1".into()),
            state: Some("running".into()),
            instance_type: Some("m6i.large".into()),
            market: Some(market),
            market_fallback: fallback,
            private_ip: None,
            interface_kept: None,
            volumes_kept: None,
            newest_backup: None,
            backups: 0,
            last_relaunch: None,
            last_drill: None,
            boot_guard: None,
            boot_guard_error: None,
        }
    }

    #[test]
    fn the_market_row_says_since_when_and_why_a_node_is_on_demand() {
        let since = Utc.with_ymd_and_hms(2026, 11, 29, 2, 0, 0).unwrap();
        let fallback = MarketFallback {
            since: Some(since),
            age_seconds: Some(26 * 3600),
            reason: Some("m6i.large InsufficientInstanceCapacity".into()),
        };
        let row = |n: NodeStatus| status("stack", &[n], &Ok(vec![]));
        let out = row(node("on-demand", Some(fallback.clone())));
        assert!(out.contains("type            m6i.large\n"), "{out}");
        assert!(
            out.contains(
                "market          on-demand since 2026-11-29T02:00:00Z (1 d 2 h ago): \
                 spot refused: m6i.large InsufficientInstanceCapacity\n"
            ),
            "{out}"
        );
        let unreadable = MarketFallback { since: None, age_seconds: None, reason: None };
        let out = row(node("on-demand", Some(unreadable)));
        assert!(out.contains("market          on-demand since an unrecorded time: spot refused: -\n"), "{out}");
        let out = row(node("on-demand", None));
        assert!(out.contains("market          on-demand as launched (no spot fallback recorded)\n"), "{out}");
        let out = row(node("spot", None));
        assert!(out.contains("market          spot\n"), "{out}");
    }

    #[test]
    fn a_fix_of_several_lines_stays_in_the_fixes_column() {
        let check = Check {
            id: "spot-kms",
            status: Status::Fail,
            detail: "d".into(),
            fix: Some("add this statement:\n{\n  \"Effect\": \"Allow\"\n}".into()),
        };
        let out = preflight("k8s-master", &[check]);
        let column = " ".repeat(21);
        assert!(
            out.contains(&format!(
                "  spot-kms           add this statement:\n{column}{{\n{column}  \"Effect\": \"Allow\"\n{column}}}\n"
            )),
            "{out}"
        );
    }
}
