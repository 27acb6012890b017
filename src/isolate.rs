//! Child-process isolation: every model load and run that edgepack does for a user (a
//! profiling configuration, `edgepack run`, calibration, compare) happens in a process of
//! its own, so a hostile or broken model can exhaust memory, hang or crash only itself.
//!
//! Why a process and not a thread: the memory figures must belong to one configuration
//! alone. ONNX Runtime's arenas never give memory back to the OS, and a process's peak RSS
//! (`VmHWM`) only grows, so measuring batch 8 after batch 1 in one process would report
//! batch 1's leftovers as batch 8's cost. A child also contains crashes: a configuration
//! that aborts, segfaults, runs out of its memory limit or hangs is recorded as failed and
//! the sweep goes on.
//!
//! Each child gets, before `exec` (in `pre_exec`, async-signal-safe calls only):
//! - its own process group, so a timeout kills it *and* anything it spawned;
//! - `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the parent (Ctrl-C on a sweep leaves no
//!   orphan burning a core);
//! - optionally `RLIMIT_DATA`, the memory limit. We use `RLIMIT_DATA` rather than
//!   `RLIMIT_AS`: since Linux 4.7 it caps private writable mappings (heap, anonymous `mmap`
//!   such as ONNX Runtime's arena and thread stacks) while `RLIMIT_AS` also counts mapped
//!   shared libraries and reserved-but-unused address space, which would make a 512 MB
//!   limit mean something different on every build of ONNX Runtime. Neither is an RSS
//!   limit (Linux has none outside cgroups): an allocation that would exceed it fails, and
//!   the child then reports an allocation error or aborts; both are classified as OOM.
//!
//! The parent waits with a wall-clock timeout and kills the whole group (`SIGKILL`) when
//! it passes. Stdout and stderr are drained on threads so a chatty child cannot block.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Limits applied to one child.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChildLimits {
    /// Wall-clock limit; the process group is killed after it.
    pub timeout_s: Option<f64>,
    /// `RLIMIT_DATA` in bytes.
    pub memory_limit_bytes: Option<u64>,
}

/// How a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it (signal number).
    Signaled(i32),
    /// The timeout passed and the parent killed it.
    TimedOut,
}

/// What a child produced.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildOutput {
    pub end: ChildEnd,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub wall_s: f64,
}

impl ChildOutput {
    /// The last few lines of stderr, for failure reasons.
    pub fn stderr_tail(&self, max_chars: usize) -> String {
        let s = String::from_utf8_lossy(&self.stderr);
        let s = s.trim();
        let start = s
            .char_indices()
            .rev()
            .nth(max_chars)
            .map(|(i, _)| i)
            .unwrap_or(0);
        s[start..].replace('\n', " | ")
    }
}

/// The name of a signal for messages (`SIGKILL`), or its number.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// Run `cmd` as an isolated child with `stdin_bytes` on its stdin, within `limits`.
/// An error means the child could not be started at all.
pub fn run_isolated(
    mut cmd: Command,
    stdin_bytes: &[u8],
    limits: ChildLimits,
) -> Result<ChildOutput> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mem = limits.memory_limit_bytes;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (prctl, getppid, setrlimit, _exit-free error returns); it allocates
    // nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then nobody will signal us.
            if libc::getppid() == 1 {
                return Err(std::io::Error::other("parent exited"));
            }
            if let Some(bytes) = mem {
                let lim = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| Error::Tool {
        tool: program.clone(),
        message: format!("cannot start the isolated child: {e}"),
    })?;
    let pid = child.id() as libc::pid_t;

    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = stdin_bytes.to_vec();
    let writer = std::thread::spawn(move || {
        // A child that dies early closes its stdin: that is reported through its exit.
        let _ = stdin.write_all(&input);
    });
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });

    let deadline = limits
        .timeout_s
        .map(|t| start + Duration::from_secs_f64(t.max(0.0)));
    let mut sleep = Duration::from_millis(1);
    let end = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                break match (status.code(), status.signal()) {
                    (Some(c), _) => ChildEnd::Exited(c),
                    (None, Some(s)) => ChildEnd::Signaled(s),
                    (None, None) => ChildEnd::Exited(-1),
                };
            }
            Ok(None) => {}
            Err(e) => {
                kill_group(pid);
                let _ = child.wait();
                return Err(Error::Tool {
                    tool: program,
                    message: format!("cannot wait for the isolated child: {e}"),
                });
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            kill_group(pid);
            let _ = child.wait();
            break ChildEnd::TimedOut;
        }
        std::thread::sleep(sleep);
        // Poll quickly at first (short configs), then back off to stay off the CPU the
        // child is being measured on.
        sleep = (sleep * 2).min(Duration::from_millis(20));
    };
    let wall_s = start.elapsed().as_secs_f64();
    // The group may still hold grandchildren with our pipes open; make sure they go.
    if end == ChildEnd::TimedOut {
        kill_group(pid);
    }
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(ChildOutput {
        end,
        stdout,
        stderr,
        wall_s,
    })
}

/// The default memory limit for a child: three quarters of physical memory (from
/// `/proc/meminfo`), so a runaway model fails its own allocation before the machine swaps
/// or the kernel's OOM killer picks a victim; 4 GiB where the total is unknown.
pub fn default_memory_limit_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| kib * 1024 / 4 * 3)
        .unwrap_or(4 << 30)
}

/// Whether a message is an allocation failure: what ONNX Runtime and the Rust allocator
/// say when `RLIMIT_DATA` refuses memory (case-insensitive).
pub fn is_allocation_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "bad_alloc",
        "failed to allocate",
        "memory allocation of",
        "out of memory",
        "cannot allocate memory",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Whether the child's stderr shows an allocation failure ([`is_allocation_failure`]).
pub fn looks_out_of_memory(stderr: &[u8]) -> bool {
    is_allocation_failure(&String::from_utf8_lossy(stderr))
}

/// One line saying why a child did not end normally, or `None` for a plain exit status.
/// Used by every caller to report a model that exhausted memory, hung or crashed.
pub fn abnormal_end(out: &ChildOutput, limits: &ChildLimits) -> Option<String> {
    let mem = |l: &ChildLimits| {
        l.memory_limit_bytes
            .map(|b| format!(" of {} MiB", b >> 20))
            .unwrap_or_default()
    };
    match out.end {
        ChildEnd::TimedOut => Some(format!(
            "did not finish within the {:.0} s timeout; it was killed",
            limits.timeout_s.unwrap_or(0.0)
        )),
        ChildEnd::Signaled(_) | ChildEnd::Exited(_) if looks_out_of_memory(&out.stderr) => Some(
            format!("ran out of its memory limit{} and was stopped", mem(limits)),
        ),
        ChildEnd::Signaled(sig) => Some(format!("crashed ({})", signal_name(sig))),
        ChildEnd::Exited(_) => None,
    }
}

/// What a worker child answers on stdout: the value it produced, or the one-line error
/// it met. This is the typed half of the protocol: the parent never reads the child's
/// stderr to learn what happened (stderr is the child's log, relayed as is).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply<T> {
    /// The work was done.
    Done(T),
    /// The work failed with this error (an input or usage problem, said in one line).
    Error(String),
}

/// Why a [`call`] produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The child ran and answered with this error (its own one line).
    Reported(String),
    /// The child ended without a usable answer: killed at the timeout, out of its memory
    /// limit, crashed, or exited without a reply (one line from [`abnormal_end`] or the
    /// exit status).
    Ended(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Reported(s) | Failure::Ended(s) => f.write_str(s),
        }
    }
}

/// The outcome of [`call`]: the typed reply, or why there is none, plus the child's log.
#[derive(Clone, Debug)]
pub struct Called<T> {
    /// The child's value, or one line saying why there is none (its own error, or an
    /// abnormal end described by [`abnormal_end`]).
    pub result: std::result::Result<T, Failure>,
    /// What the child wrote on stdout before its reply (a command's result table), for
    /// relaying.
    pub stdout: Vec<u8>,
    /// What the child wrote on stderr (its progress and warnings), for relaying.
    pub log: Vec<u8>,
}

/// A request sent to a child and what came back, before any judgement of how it ended:
/// for a caller that classifies endings itself (the profiler names a timeout, an OOM and
/// a signal as different failure kinds of a configuration). Most callers want [`call`].
#[derive(Clone, Debug)]
pub struct Exchange<T> {
    /// How the child ended; its `stdout` is what it wrote *before* its reply line.
    pub output: ChildOutput,
    /// The child's [`Reply`]: `None` when it wrote none, `Err` (why) when the last line
    /// is not a valid reply.
    pub reply: Option<std::result::Result<Reply<T>, String>>,
}

/// Run `cmd` as an isolated child, send it `request` as JSON on stdin and read its
/// [`Reply`] (one JSON line, the last line of its stdout). An error means the child could
/// not be started at all; how it ended is in [`Exchange::output`].
pub fn exchange<Req, Rep>(cmd: Command, request: &Req, limits: ChildLimits) -> Result<Exchange<Rep>>
where
    Req: serde::Serialize,
    Rep: serde::de::DeserializeOwned,
{
    let json = serde_json::to_vec(request).map_err(|e| Error::Tool {
        tool: cmd.get_program().to_string_lossy().into_owned(),
        message: format!("cannot encode the request: {e}"),
    })?;
    let mut output = run_isolated(cmd, &json, limits)?;
    // The reply is the last non-empty line; what comes before it is the child's output.
    let trimmed = output.stdout.trim_ascii_end();
    let start = trimmed
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let (before, line) = trimmed.split_at(start);
    let reply = (!line.is_empty())
        .then(|| serde_json::from_slice::<Reply<Rep>>(line).map_err(|e| e.to_string()));
    output.stdout = before.to_vec();
    Ok(Exchange { output, reply })
}

/// [`exchange`], with every way the child can fail said in one line
/// ([`abnormal_end`] first: a child that was killed or ran out of memory failed, whatever
/// it wrote).
pub fn call<Req, Rep>(cmd: Command, request: &Req, limits: ChildLimits) -> Result<Called<Rep>>
where
    Req: serde::Serialize,
    Rep: serde::de::DeserializeOwned,
{
    let Exchange { output, reply } = exchange(cmd, request, limits)?;
    let result = match (abnormal_end(&output, &limits), reply) {
        (Some(why), _) => Err(Failure::Ended(why)),
        (None, None) => Err(Failure::Ended(match output.end {
            ChildEnd::Exited(c) => format!(
                "the worker exited with status {c} without a reply: {}",
                output.stderr_tail(300)
            ),
            ref other => format!("the worker ended ({other:?}) without a reply"),
        })),
        (None, Some(Ok(Reply::Done(v)))) => Ok(v),
        (None, Some(Ok(Reply::Error(e)))) => Err(Failure::Reported(e)),
        (None, Some(Err(e))) => Err(Failure::Ended(format!(
            "the worker's reply is not valid ({e})"
        ))),
    };
    Ok(Called {
        result,
        stdout: output.stdout,
        log: output.stderr,
    })
}

/// The child side of [`call`]: read one request from stdin, do the work, write the
/// [`Reply`] as one JSON line on stdout. A request that does not parse is answered with an
/// error reply too, so the parent always gets a typed answer from a child that ran.
pub fn serve<Req, Rep, E>(work: impl FnOnce(Req) -> std::result::Result<Rep, E>) -> Result<()>
where
    Req: serde::de::DeserializeOwned,
    Rep: serde::Serialize,
    E: std::fmt::Display,
{
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Error::io("standard input", e))?;
    let reply = match serde_json::from_str::<Req>(&text) {
        Ok(req) => match work(req) {
            Ok(v) => Reply::Done(v),
            // `{:#}`: an error with a chain (anyhow) says it all on the one line.
            Err(e) => Reply::Error(format!("{e:#}")),
        },
        Err(e) => Reply::Error(format!("invalid worker request: {e}")),
    };
    let line = serde_json::to_string(&reply).map_err(|e| Error::Tool {
        tool: "worker".into(),
        message: format!("cannot encode the reply: {e}"),
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("standard output", e))
}

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: plain system call; a negative pid addresses the child's own process group,
    // which `process_group(0)` made distinct from ours.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn passes_stdin_and_collects_stdout_and_exit_status() {
        let out = run_isolated(
            sh("cat; echo oops >&2; exit 3"),
            b"hello",
            ChildLimits::default(),
        )
        .unwrap();
        assert_eq!(out.end, ChildEnd::Exited(3));
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr_tail(100), "oops");
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        // The grandchild holds stdout open; if only the shell were killed, reading stdout
        // would block for the full sleep.
        let t = Instant::now();
        let limits = ChildLimits {
            timeout_s: Some(0.3),
            ..Default::default()
        };
        let out = run_isolated(sh("sleep 30 & sleep 30; wait"), b"", limits).unwrap();
        assert_eq!(out.end, ChildEnd::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }

    #[test]
    fn reports_the_signal_that_ended_the_child() {
        let out = run_isolated(sh("kill -SEGV $$"), b"", ChildLimits::default()).unwrap();
        assert_eq!(out.end, ChildEnd::Signaled(libc::SIGSEGV));
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
    }

    #[test]
    fn memory_limit_is_applied_as_rlimit_data() {
        // `ulimit -d` prints RLIMIT_DATA in KiB.
        let limits = ChildLimits {
            memory_limit_bytes: Some(256 * 1024 * 1024),
            ..Default::default()
        };
        let out = run_isolated(sh("ulimit -d"), b"", limits).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "262144");
    }

    #[test]
    fn abnormal_ends_are_named() {
        let limits = ChildLimits {
            timeout_s: Some(5.0),
            memory_limit_bytes: Some(64 << 20),
        };
        let out = |end, stderr: &[u8]| ChildOutput {
            end,
            stdout: vec![],
            stderr: stderr.to_vec(),
            wall_s: 0.0,
        };
        let t = abnormal_end(&out(ChildEnd::TimedOut, b""), &limits).unwrap();
        assert!(t.contains("5 s timeout"), "{t}");
        let m = abnormal_end(
            &out(
                ChildEnd::Signaled(libc::SIGABRT),
                b"memory allocation of 99 bytes failed",
            ),
            &limits,
        )
        .unwrap();
        assert!(m.contains("memory limit of 64 MiB"), "{m}");
        let c = abnormal_end(&out(ChildEnd::Signaled(libc::SIGSEGV), b""), &limits).unwrap();
        assert_eq!(c, "crashed (SIGSEGV)");
        assert_eq!(abnormal_end(&out(ChildEnd::Exited(2), b"x"), &limits), None);
        assert!(default_memory_limit_bytes() > 0);
    }

    #[test]
    fn memory_limit_stops_a_runaway_allocation() {
        // A shell that tries to build a 512 MiB string under a 64 MiB data limit.
        let limits = ChildLimits {
            timeout_s: Some(30.0),
            memory_limit_bytes: Some(64 << 20),
        };
        let out = run_isolated(
            sh("x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo ${#x}"),
            b"",
            limits,
        )
        .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("268435456"),
            "{out:?}"
        );
    }

    #[test]
    fn call_reads_a_typed_reply_and_names_every_failure() {
        // The reply is the last stdout line; log lines before it and on stderr are kept
        // apart from it.
        let done: Called<u32> = call(
            sh(r#"cat >/dev/null; echo chatter; echo progress >&2; echo '{"done":7}'"#),
            &"req",
            ChildLimits::default(),
        )
        .unwrap();
        assert_eq!(done.result, Ok(7));
        assert_eq!(done.stdout, b"chatter\n");
        assert_eq!(String::from_utf8_lossy(&done.log).trim(), "progress");
        let err: Called<u32> = call(
            sh(r#"echo '{"error":"x.onnx: not a model"}'; exit 2"#),
            &(),
            ChildLimits::default(),
        )
        .unwrap();
        assert_eq!(
            err.result,
            Err(Failure::Reported("x.onnx: not a model".to_string()))
        );
        let crashed: Called<u32> = call(sh("kill -SEGV $$"), &(), ChildLimits::default()).unwrap();
        assert_eq!(
            crashed.result,
            Err(Failure::Ended("crashed (SIGSEGV)".to_string()))
        );
        let silent: Called<u32> = call(sh("exit 101"), &(), ChildLimits::default()).unwrap();
        assert!(silent
            .result
            .unwrap_err()
            .to_string()
            .contains("status 101 without a reply"));
        let garbled: Called<u32> = call(sh("echo nope"), &(), ChildLimits::default()).unwrap();
        assert!(garbled
            .result
            .unwrap_err()
            .to_string()
            .contains("not valid"));
    }

    #[test]
    fn missing_program_is_an_error_not_a_failed_config() {
        let e = run_isolated(
            Command::new("/nonexistent/edgepack"),
            b"",
            ChildLimits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot start"), "{e}");
    }
}
