//! Prints what lifeboat's code declares about itself for the checks of its
//! deployment ([`lifeboat_core::contract`]): `make lint-infra` runs it and
//! passes its output to infra/check_stack.py --manifest.

fn main() {
    println!("{:#}", lifeboat_core::contract::manifest());
}
