//! The `lifeboat` binary's tests, one binary (each links the AWS SDK): its
//! help and usage errors, its refusals, and its commands against the
//! emulator. Run one module with
//! `cargo nextest run -p lifeboat-cli --test cli -E 'test(/^help::/)'`.

mod cli_emulator;
mod cli_recovery;
mod credentials;
mod help;
mod stack_name;
mod support;
