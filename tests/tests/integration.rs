//! lifeboat's integration tests, one binary: each module runs the real
//! binaries and the real SDK over HTTP against the emulator
//! (tests/emulator/), one AWS account per test. Run one module with
//! `cargo nextest run -p lifeboat-tests -E 'test(/^faults::/)'`.

mod drill;
mod emulator;
mod faults;
mod iam;
mod interruption_handler;
mod retention_pruner;
mod scheduled_backup;
