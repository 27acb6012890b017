//! `edgepack probe [-o DEVICE.json] [--threads 1,2] [--max-time 60s]`: characterise this
//! device for the cost model (see `edgepack::hardware::probe`). The profile is written
//! atomically at the end, so an interrupted probe leaves no file.

use std::path::PathBuf;

use clap::Args;

use edgepack::hardware::device::WorkUnit;
use edgepack::hardware::probe::{self, ProbeObserver, ProbeOptions, Scope};
use edgepack::profile::sweep::WorkerCommand;
use edgepack::units::Unit;
use edgepack::Error;

use super::Outcome;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Where to write the device profile (schema edgepack.device/1).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        default_value = "device.json"
    )]
    pub output: PathBuf,
    /// Intra-op thread counts to probe (default: 1 and, with two or more cores, 2).
    #[arg(long, value_delimiter = ',', value_name = "N,M,...")]
    pub threads: Vec<usize>,
    /// Wall-time budget of the whole probe, e.g. 90s (the per-model measurement is sized
    /// from it; process starts come on top).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub max_time: String,
    /// Probe only the overhead, memory, fp32 element-wise and 3x3 conv models, at tiny
    /// sizes (seconds): its memory lines are the full probe's, its kernel lines are not
    /// (latency predictions from it run 3-10x low). For memory-only boards and tests.
    #[arg(long)]
    pub tiny: bool,
}

struct Progress;

impl ProbeObserver for Progress {
    fn measuring(&mut self, index: usize, total: usize, name: &str, threads: usize) {
        eprintln!("[{}/{total}] threads {threads}: {name}", index + 1);
    }
}

pub fn run(ort_lib: &Option<PathBuf>, args: ProbeArgs) -> anyhow::Result<Outcome> {
    let max_time_s = super::quantity("--max-time", &args.max_time, Unit::Seconds)?;
    if max_time_s <= 0.0 {
        return Err(Error::usage("--max-time", "must be positive").into());
    }
    let threads = if args.threads.is_empty() {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if cores >= 2 {
            vec![1, 2]
        } else {
            vec![1]
        }
    } else {
        args.threads.clone()
    };
    if threads.contains(&0) {
        return Err(Error::usage("--threads", "thread counts must be at least 1").into());
    }
    let mut seen = threads.clone();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::usage(
            "--threads",
            format!("{threads:?} names a thread count twice"),
        )
        .into());
    }
    // Fail on an unwritable destination before a minute of measuring.
    let dir = match args.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::file(
            &args.output,
            format!("cannot write: folder {} does not exist", dir.display()),
        )
        .into());
    }
    if args.output.is_dir() {
        return Err(Error::file(
            &args.output,
            "cannot write: it is a folder (name the device profile's file, e.g. device.json)",
        )
        .into());
    }
    let info = edgepack::runtime::ensure(ort_lib.as_deref())?;
    let opts = ProbeOptions {
        threads,
        max_time_s,
        scope: if args.tiny { Scope::Tiny } else { Scope::Full },
        ort_lib: Some(info.path.clone()),
        worker: WorkerCommand::current_exe()?,
        onnxruntime_version: info.version.clone().unwrap_or_default(),
    };
    eprintln!(
        "probing this device with ONNX Runtime {} (threads {:?}, budget {max_time_s:.0} s)",
        opts.onnxruntime_version, opts.threads
    );
    let mut profile = probe::probe(&opts, &mut Progress)?;
    profile.write(&args.output)?;
    let mut out = String::new();
    for t in &profile.threads {
        out.push_str(&format!(
            "threads {}: run overhead {:.1} us, dispatch {:.2} us per kernel\n",
            t.threads,
            t.run_overhead_s * 1e6,
            t.dispatch_overhead_s * 1e6
        ));
        for k in &t.kernels {
            let rate = if k.s_per_work > 0.0 {
                1.0 / k.s_per_work / 1e9
            } else {
                f64::INFINITY
            };
            let unit = match k.unit {
                WorkUnit::Macs => "GMAC/s",
                WorkUnit::Bytes => "GB/s",
            };
            out.push_str(&format!(
                "  {:<16} {:<5} {rate:>8.2} {unit:<6} fixed {:.1} us\n",
                k.class.as_str(),
                k.dtype.as_str(),
                k.fixed_s * 1e6
            ));
        }
    }
    out.push_str(&format!(
        "memory: fixed {} MiB, {:.2} bytes per weight byte, {:.2} per activation byte\n",
        profile.memory.fixed_bytes >> 20,
        profile.memory.weight_factor,
        profile.memory.activation_factor
    ));
    print!("{out}");
    eprintln!(
        "wrote {} in {:.1} s",
        args.output.display(),
        profile.probe_wall_s
    );
    Ok(Outcome::Success)
}
