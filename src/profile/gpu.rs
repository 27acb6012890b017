//! GPU need of a configuration (CUDA execution provider only).
//!
//! With the `cuda` feature, the worker asks `nvidia-smi` right after the timed loop for the
//! device name, the memory this process holds on the GPU (`--query-compute-apps`) and the
//! device's utilisation (the driver averages it over its last sample period, 1/6 s to 1 s,
//! so a query right after the loop reflects the loop). Without the feature, or when
//! `nvidia-smi` is missing, there is no GPU figure (never a made-up one).

use super::schema::GpuStats;

/// Query this process's GPU use; `None` without the `cuda` feature or without nvidia-smi.
#[cfg(feature = "cuda")]
pub fn query() -> Option<GpuStats> {
    use std::process::Command;
    let run = |args: &[&str]| -> Option<String> {
        let out = Command::new("nvidia-smi").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let dev = run(&[
        "--query-gpu=name,utilization.gpu",
        "--format=csv,noheader,nounits",
    ])?;
    let apps = run(&[
        "--query-compute-apps=pid,used_memory",
        "--format=csv,noheader,nounits",
    ])
    .unwrap_or_default();
    parse(&dev, &apps, std::process::id())
}

/// Without the `cuda` feature there is no GPU to ask.
#[cfg(not(feature = "cuda"))]
pub fn query() -> Option<GpuStats> {
    None
}

/// Parse `nvidia-smi` CSV (no header, no units): the first device's `name, util` and this
/// pid's `pid, used_memory_MiB` rows.
pub fn parse(device_csv: &str, apps_csv: &str, pid: u32) -> Option<GpuStats> {
    let first = device_csv.lines().next()?;
    let (name, util) = first.rsplit_once(',')?;
    let memory_mib: u64 = apps_csv
        .lines()
        .filter_map(|l| {
            let (p, m) = l.split_once(',')?;
            (p.trim().parse::<u32>().ok()? == pid).then(|| m.trim().parse::<u64>().ok())?
        })
        .sum();
    Some(GpuStats {
        device_name: name.trim().to_string(),
        memory_used_bytes: memory_mib * 1024 * 1024,
        utilization_percent: util.trim().parse().ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_csv_for_this_pid() {
        let g = parse(
            "NVIDIA H100 80GB HBM3, 87\n",
            "4242, 1536\n999, 100\n",
            4242,
        )
        .unwrap();
        assert_eq!(g.device_name, "NVIDIA H100 80GB HBM3");
        assert_eq!(g.memory_used_bytes, 1536 * 1024 * 1024);
        assert_eq!(g.utilization_percent, Some(87.0));
        assert_eq!(parse("", "", 1), None);
        let na = parse("GPU, [N/A]\n", "", 1).unwrap();
        assert_eq!(na.utilization_percent, None);
    }
}
