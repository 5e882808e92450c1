//! Prints the user data interruption-handler launches with:
//! `user_data [--fence IP]...`. The shell tests boot fixtures with exactly it.

use std::net::Ipv4Addr;

fn main() {
    let mut fence: Vec<Ipv4Addr> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|ip| ip.parse())) {
            ("--fence", Some(Ok(ip))) => fence.push(ip),
            _ => {
                eprintln!("usage: user_data [--fence IPV4]...");
                std::process::exit(2);
            }
        }
    }
    print!("{}", lifeboat_core::userdata::render(&fence));
}
