//! Human output: aligned tables on stdout, and progress on stderr (the
//! elapsed time ticking when stderr is a terminal, one line per phase
//! otherwise).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Columns aligned to their widest cell, a rule under the header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![
        line(header.to_vec()),
        line(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect()),
    ];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n") + "\n"
}

/// `-` for what is not known.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".to_string())
}

/// Progress while the tool waits.
pub struct Progress {
    state: Option<Arc<Mutex<(String, bool)>>>,
    started: Instant,
    tty: bool,
}

impl Progress {
    /// Shown on stderr: ticking on a terminal, a line per phase otherwise.
    pub fn start(phase: &str) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let state = Arc::new(Mutex::new((phase.to_string(), true)));
        let started = Instant::now();
        if tty {
            let ticking = Arc::clone(&state);
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(500));
                    let guard = ticking.lock().unwrap();
                    if !guard.1 {
                        break;
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[2K  {} ... {}", guard.0, elapsed(started.elapsed()));
                    let _ = err.flush();
                }
            });
        } else {
            eprintln!("  {phase} ...");
        }
        Progress { state: Some(state), started, tty }
    }

    /// Nothing shown (tests).
    #[cfg(test)]
    pub fn hidden() -> Progress {
        Progress { state: None, started: Instant::now(), tty: false }
    }

    pub fn phase(&self, phase: &str) {
        let Some(state) = &self.state else { return };
        state.lock().unwrap().0 = phase.to_string();
        if !self.tty {
            eprintln!("  {phase} ... ({})", elapsed(self.started.elapsed()));
        }
    }

    pub fn finish(&self) {
        let Some(state) = &self.state else { return };
        let mut guard = state.lock().unwrap();
        if guard.1 && self.tty {
            eprint!("\r\x1b[2K");
        }
        guard.1 = false;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `1 min 05 s`, `42 s`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 { format!("{s} s") } else { format!("{} min {:02} s", s / 60, s % 60) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_trailing_space() {
        let t = table(&["node", "state"], &[vec!["k8s-master".into(), "running".into()], vec!["n".into(), "-".into()]]);
        assert_eq!(t, "node        state\n----------  -------\nk8s-master  running\nn           -\n");
    }

    #[test]
    fn elapsed_time_reads_as_minutes_and_seconds() {
        assert_eq!(elapsed(Duration::from_secs(42)), "42 s");
        assert_eq!(elapsed(Duration::from_secs(125)), "2 min 05 s");
    }
}
