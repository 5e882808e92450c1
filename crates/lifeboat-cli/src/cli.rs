//! The command line: what a person types, and its help.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lifeboat",
    version,
    max_term_width = 100,
    about = "Check, watch and prove lifeboat's protection of a spot kubeadm control plane",
    long_about = "Check, watch and prove lifeboat's protection of a spot kubeadm control plane.\n\n\
        Finds the deployed functions, topic and experiment from the outputs of the CloudFormation \
        stack (--stack), with the standard AWS credentials and region (AWS_PROFILE, AWS_REGION, ...).",
    after_help = "Exit codes: 0 pass, 1 fail, 2 usage.\n\n\
        A first run:\n  lifeboat preflight --node k8s-master\n  lifeboat backup --node k8s-master\n  \
        lifeboat drill --node k8s-master\n  lifeboat status"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The CloudFormation stack lifeboat was deployed as (at most 43 characters)
    #[arg(long, global = true, default_value = "lifeboat", value_name = "NAME", value_parser = crate::stack::parse_name)]
    pub stack: String,
    /// The AWS region (default: the standard AWS configuration's)
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Print JSON on stdout instead of tables, for scripts
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NodeArg {
    /// The node's name: the value of its lifeboat:node tag
    #[arg(long, value_name = "NAME")]
    pub node: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, read-only, everything a relaunch of the node needs, each with its fix
    #[command(long_about = "Check, read-only, everything a relaunch of the node needs, and print each \
        check with pass, warn or fail and the exact fix: the node tag, the spot request, the instance \
        profile and the role the stack may pass, the SSM agent, the kept interface and how a replacement \
        reaches SSM, kubelet/cloud-init/IMDSv2 on the node (one read-only SSM command), the repair's own \
        dry run on the node (the stack's repair document with --dry-run: the tools, etcd's data, the \
        certificates, and what a move to a new IP needs), EBS volumes, bare-metal relaunch types, the volumes' KMS keys and whether EC2 Spot may use them, \
        the stack, and the account's Lambda concurrency.\n\n\
        Fails (exit 1) when any check fails; warnings pass.")]
    Preflight(NodeArg),
    /// Show each node: instance, market, what is kept, backups, last relaunch and drill, alarms
    #[command(long_about = "Show each protected node as AWS records it: its instance, state, type and \
        market (on-demand after a relaunch found no spot capacity: since when and why), private IP, whether its interface and volumes are kept, its newest backup and its age, \
        the number of backups, its last relaunch and last restore drill; then the stack's alarms.\n\n\
        Fails (exit 1) when an alarm is in ALARM or a node has no instance running.")]
    Status {
        /// Only this node
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
    },
    /// Back the node up now (invokes the stack's scheduled-backup function)
    #[command(long_about = "Back the node up now: invokes the stack's scheduled-backup function for \
        the node, waits for it, and prints the image it made and how it prepared the node (its \
        interface and volumes kept). Fails (exit 1) when the backup or the preparation failed.")]
    Backup(NodeArg),
    /// Prove the newest backup restores to a healthy control plane (a restore drill)
    #[command(long_about = "Run a restore drill: interruption-handler launches a clone of the node from \
        its newest backup on a new IP, fenced off the live node, repairs it in quarantine, checks its \
        health and removes it. Waits (up to 15 minutes), prints the timeline and the outcome; fails \
        (exit 1) when the drill failed.")]
    Drill(NodeArg),
    /// Relaunch a node whose instance is gone, from its newest state
    #[command(long_about = "Relaunch a node whose instance is gone (refused while one is alive): \
        interruption-handler launches it on its kept interface and disks or its newest backup and \
        repairs it. Waits (up to 15 minutes), prints the timeline and the state it came back with; \
        fails (exit 1) when the restore failed.")]
    Restore(NodeArg),
    /// Interrupt the node for real with AWS FIS and time its recovery
    #[command(long_about = "Interrupt the node's spot instance for real, with the stack's AWS Fault \
        Injection Service experiment template (aws:ec2:send-spot-instance-interruptions), then follow \
        the recovery through AWS: the replacement, its root volume, its repair. Prints the time from \
        the warning to a healthy control plane and the state it came back with.\n\n\
        The node WILL be terminated: refused without --yes.")]
    Interrupt {
        #[command(flatten)]
        node: NodeArg,
        /// Yes, interrupt the node for real
        #[arg(long)]
        yes: bool,
        /// Give up after this many minutes
        #[arg(long, default_value_t = 25, value_name = "MINUTES")]
        timeout: u64,
    },
}
