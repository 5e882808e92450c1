//! Prints the repair script exactly as interruption-handler sends it to a
//! node (`Script::sent_text`: its comment lines emptied). The shell tests
//! run this text, so what they prove is what a node runs.

fn main() {
    print!("{}", lifeboat_core::ports::Script::Repair.sent_text());
}
