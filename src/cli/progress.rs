//! A one-line progress indicator for the long steps of `build` (quantization with its
//! calibration, the profiling sweeps): while a step runs, `  quantize int8 … 12 s` is
//! redrawn on stderr once a second and erased when it ends.
//!
//! It only draws on a terminal: when stdout or stderr is not one (a CI log, a pipe) or
//! `--quiet` was given, nothing is written, so logs hold no carriage returns.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no progress lines at all.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--quiet` was given: no step lines either.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether progress is drawn: both streams are terminals and `--quiet` was not given.
pub fn enabled() -> bool {
    !quiet() && std::io::stderr().is_terminal() && std::io::stdout().is_terminal()
}

/// Draws `label … N s` until dropped.
pub struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    /// Start drawing (a no-op when [`enabled`] is false).
    pub fn start(label: String) -> Ticker {
        if !enabled() {
            return Ticker {
                stop: None,
                thread: None,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            loop {
                let mut e = std::io::stderr();
                let _ = write!(e, "\r\x1b[2K  {label} … {} s", t0.elapsed().as_secs());
                let _ = e.flush();
                // A message or a dropped sender both mean the step ended.
                if !matches!(
                    rx.recv_timeout(Duration::from_secs(1)),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    let _ = write!(e, "\r\x1b[2K");
                    let _ = e.flush();
                    return;
                }
            }
        });
        Ticker {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_turns_progress_off() {
        set_quiet(true);
        assert!(!enabled());
        // Dropping a ticker that never drew returns at once.
        drop(Ticker::start("profile fp32".into()));
        set_quiet(false);
    }
}
