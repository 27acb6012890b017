//! Crash-safe writes: edgepack killed with SIGKILL at random points while writing a
//! package, and edgepack hitting a full disk (`RLIMIT_FSIZE`), must leave the destination
//! holding a complete old or new file, never half of one, and no temporary files that a
//! later run does not clean up.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgepack::artifact::TEMP_PREFIX;
use edgepack::model::builder;
use edgepack::tensor::{npy, DType, Tensor};

/// A model of a few MB with its self-test files, so `package` needs no runtime and spends
/// long enough writing to be interrupted.
fn source(dir: &Path, seed: u64) -> (PathBuf, PathBuf) {
    let src = dir.join(format!("src{seed}"));
    std::fs::create_dir_all(src.join("samples/expected")).unwrap();
    let model = src.join("model.onnx");
    std::fs::write(&model, builder::mlp(&[256, 2048, 16], seed).to_bytes()).unwrap();
    npy::write_npy(
        &src.join("samples/x.npy"),
        &Tensor::random(DType::F32, &[1, 256], 1),
    )
    .unwrap();
    npy::write_npy(
        &src.join("samples/expected/y.npy"),
        &Tensor::random(DType::F32, &[1, 16], 2),
    )
    .unwrap();
    (model, src.join("samples"))
}

fn package_cmd(model: &Path, samples: &Path, out: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("edgepack"));
    c.arg("package")
        .arg(model)
        .arg("-o")
        .arg(out)
        .arg("--sample-inputs")
        .arg(samples)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(TEMP_PREFIX))
        .collect()
}

/// Reference packages for two models, made by uninterrupted runs.
fn references(dir: &Path) -> [(PathBuf, PathBuf, Vec<u8>); 2] {
    [1u64, 2].map(|seed| {
        let (model, samples) = source(dir, seed);
        let out = dir.join(format!("ref{seed}.edgepkg"));
        let o = package_cmd(&model, &samples, &out).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let bytes = std::fs::read(&out).unwrap();
        (model, samples, bytes)
    })
}

#[test]
fn sigkill_while_writing_a_package_leaves_old_or_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let refs = references(dir.path());
    assert_ne!(refs[0].2, refs[1].2);
    let out_dir = dir.path().join("dist");
    std::fs::create_dir(&out_dir).unwrap();
    let dest = out_dir.join("model.edgepkg");
    std::fs::write(&dest, &refs[0].2).unwrap();

    // How long one uninterrupted run takes, to spread the kills over it.
    let t = Instant::now();
    let o = package_cmd(&refs[1].0, &refs[1].1, &dest).output().unwrap();
    assert!(o.status.success());
    let full = t.elapsed();

    let mut rng: u64 = 0x9e3779b97f4a7c15;
    let mut outcomes = [0usize; 2];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut iterations = 0;
    while iterations < 30 && Instant::now() < deadline {
        iterations += 1;
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let which = (rng >> 33) as usize % 2;
        let at = full.mul_f64(((rng >> 11) % 1000) as f64 / 1000.0 * 1.1);
        let mut child = package_cmd(&refs[which].0, &refs[which].1, &dest)
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = std::fs::read(&dest).expect("destination still exists");
        let idx = refs.iter().position(|r| r.2 == now).unwrap_or_else(|| {
            panic!(
                "iteration {iterations}: destination is neither old nor new ({} bytes)",
                now.len()
            )
        });
        outcomes[idx] += 1;
        edgepack::package::verify::open(&dest, None).expect("destination verifies");
    }
    eprintln!("{iterations} kills; destination was package 1 {} times, package 2 {} times; {} temp files left",
        outcomes[0], outcomes[1], temp_files(&out_dir).len());
    assert!(
        iterations >= 10,
        "only {iterations} iterations in the time allowed"
    );
    // A later successful run removes what the killed runs left behind.
    let o = package_cmd(&refs[0].0, &refs[0].1, &dest).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&dest).unwrap(), refs[0].2);
    assert_eq!(temp_files(&out_dir), Vec::<String>::new());
}

#[test]
fn full_disk_is_a_clear_error_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let refs = references(dir.path());
    let out_dir = dir.path().join("dist");
    std::fs::create_dir(&out_dir).unwrap();
    let dest = out_dir.join("model.edgepkg");
    std::fs::write(&dest, &refs[0].2).unwrap();
    // The package is ~2 MB; the "disk" takes 256 KiB per file.
    let mut cmd = package_cmd(&refs[1].0, &refs[1].1, &dest);
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Without this the kernel ends the writer with SIGXFSZ instead of failing the
            // write with EFBIG, as a full disk (ENOSPC) would.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 256 * 1024,
                rlim_max: 256 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("model.edgepkg"), "{stderr}");
    assert!(lines[0].contains("too large"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        refs[0].2,
        "old file replaced"
    );
    assert_eq!(temp_files(&out_dir), Vec::<String>::new());
}
