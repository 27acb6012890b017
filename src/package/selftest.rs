//! Self-test cases: sample inputs (`.npy`) and the outputs the model must give for them.
//!
//! `--sample-inputs DIR` takes either `DIR/<input>.npy` (one case) or `DIR/<case>/<input>.npy`
//! (several). Expected outputs come from `DIR[/<case>]/expected/<output>.npy` when the user
//! provides them, otherwise from running the model through a [`Runner`] (ONNX Runtime, in
//! the CLI). Inputs are checked against the contract (names, dtype, rank, fixed dims) here,
//! from the `.npy` header, before anything runs.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

use super::manifest::{Contract, Dim, ExecutionContext, Tolerance};

/// Computes a model's outputs for sample inputs (all tensors as `.npy` bytes).
pub trait Runner {
    /// Run `model` (ONNX bytes) with `ctx` on `inputs`; return the outputs as `.npy` bytes
    /// and a description of what produced them (e.g. `onnxruntime 1.31.1 cpu`).
    fn run(
        &self,
        model: &[u8],
        ctx: &ExecutionContext,
        inputs: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(BTreeMap<String, Vec<u8>>, String)>;
}

/// One case as read from disk.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleCase {
    pub name: String,
    pub inputs: BTreeMap<String, Vec<u8>>,
    pub expected: Option<BTreeMap<String, Vec<u8>>>,
}

/// The dtype (numpy `descr`) and shape of a `.npy` file, from its header.
pub fn npy_header(bytes: &[u8]) -> std::result::Result<(String, Vec<u64>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated .npy header")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or("no 'descr' in .npy header")?;
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape_s = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or("no 'shape' in .npy header")?;
    let shape = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| format!("bad dim '{s}' in .npy shape"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let elem = descr.trim_start_matches(['<', '>', '|', '=']);
    let nelem = shape
        .iter()
        .try_fold(1u64, |a, d| a.checked_mul(*d))
        .ok_or("shape overflows")?;
    let width: u64 = elem[1..]
        .parse()
        .map_err(|_| format!("unsupported dtype '{descr}'"))?;
    let need = nelem.checked_mul(width).ok_or("shape overflows")?;
    if (bytes.len() - start - hlen) as u64 != need {
        return Err(format!(
            "data is {} bytes but dtype {descr} and shape {shape:?} need {need}",
            bytes.len() - start - hlen
        ));
    }
    Ok((descr.to_string(), shape))
}

/// A file name for a tensor inside the archive. Tensor names are arbitrary strings
/// (`save_infer_model/scale_0.tmp_1`, `..`, names differing only in case), so they are
/// never used as paths directly: characters outside `[A-Za-z0-9._-]` become `_`, and a
/// name already `taken` (compared case-insensitively) or made only of dots gets a numeric
/// suffix. The manifest maps each tensor name to its file.
pub fn tensor_file_name(name: &str, taken: &mut std::collections::BTreeSet<String>) -> String {
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if base.is_empty() || base.chars().all(|c| c == '.') {
        base = format!("tensor{base}").replace('.', "_");
    }
    base.truncate(200);
    let mut candidate = format!("{base}.npy");
    let mut i = 1;
    while taken.contains(&candidate.to_lowercase()) {
        candidate = format!("{base}-{i}.npy");
        i += 1;
    }
    taken.insert(candidate.to_lowercase());
    candidate
}

/// numpy `descr` -> manifest dtype name.
fn npy_dtype(descr: &str) -> String {
    match descr.trim_start_matches(['<', '>', '|', '=']) {
        "f4" => "float32",
        "f2" => "float16",
        "f8" => "float64",
        "i1" => "int8",
        "u1" => "uint8",
        "i2" => "int16",
        "u2" => "uint16",
        "i4" => "int32",
        "u4" => "uint32",
        "i8" => "int64",
        "u8" => "uint64",
        "b1" => "bool",
        other => other,
    }
    .to_string()
}

fn read_npys(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy") && p.is_file())
        .collect();
    paths.sort();
    for p in paths {
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        npy_header(&bytes).map_err(|m| Error::file(&p, m))?;
        out.insert(name, bytes);
    }
    Ok(out)
}

/// Read `--sample-inputs DIR` and check every input against the contract.
pub fn read_samples(dir: &Path, contract: &Contract) -> Result<Vec<SampleCase>> {
    if !dir.is_dir() {
        return Err(Error::file(
            dir,
            "sample inputs must be a folder of .npy files",
        ));
    }
    let mut case_dirs = vec![];
    if read_npys(dir)?.is_empty() {
        let mut subs: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "expected"))
            .collect();
        subs.sort();
        case_dirs.extend(subs);
    } else {
        case_dirs.push(dir.to_path_buf());
    }
    if case_dirs.is_empty() {
        return Err(Error::file(dir, "no .npy sample inputs found"));
    }
    let mut cases = Vec::new();
    for (i, cd) in case_dirs.iter().enumerate() {
        let name = if cd == dir {
            "case0".to_string()
        } else {
            cd.file_name().unwrap().to_string_lossy().to_string()
        };
        if super::archive::check_name(&name).is_err() || name.contains('/') {
            return Err(Error::file(
                cd,
                "case folder name is not a safe archive name",
            ));
        }
        let inputs = read_npys(cd)?;
        for spec in &contract.inputs {
            let Some(bytes) = inputs.get(&spec.name) else {
                return Err(Error::file(
                    cd,
                    format!(
                        "missing sample for input '{}' ({}.npy)",
                        spec.name, spec.name
                    ),
                ));
            };
            let (descr, shape) = npy_header(bytes).expect("checked when read");
            if npy_dtype(&descr) != spec.dtype {
                return Err(Error::input(
                    &spec.name,
                    format!(
                        "sample in {} is {}, the model wants {}",
                        cd.display(),
                        npy_dtype(&descr),
                        spec.dtype
                    ),
                ));
            }
            if let Some(dims) = &spec.shape {
                let fits = dims.len() == shape.len()
                    && dims.iter().zip(&shape).all(|(d, n)| match d {
                        Dim::Fixed(f) => *f < 0 || *f as u64 == *n,
                        _ => true,
                    });
                if !fits {
                    return Err(Error::input(
                        &spec.name,
                        format!(
                            "sample in {} has shape {shape:?}, the model wants {}",
                            cd.display(),
                            serde_json::to_string(dims).unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        for extra in inputs.keys() {
            if !contract.inputs.iter().any(|s| &s.name == extra) {
                return Err(Error::file(
                    cd,
                    format!("'{extra}.npy' is not an input of the model"),
                ));
            }
        }
        let exp_dir = cd.join("expected");
        let expected = if exp_dir.is_dir() {
            let e = read_npys(&exp_dir)?;
            for spec in &contract.outputs {
                if !e.contains_key(&spec.name) {
                    return Err(Error::file(
                        &exp_dir,
                        format!("missing expected output '{}.npy'", spec.name),
                    ));
                }
            }
            Some(e)
        } else {
            None
        };
        let _ = i;
        cases.push(SampleCase {
            name,
            inputs,
            expected,
        });
    }
    Ok(cases)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn quantized_variants_get_a_wider_tolerance_never_a_narrower_one() {
        let fp32 = Tolerance {
            abs: 1e-4,
            rel: 1e-3,
        };
        assert_eq!(variant_tolerance("fp32", &fp32), fp32);
        let h = variant_tolerance("fp16", &fp32);
        let q = variant_tolerance("int8", &fp32);
        assert!(h.abs > fp32.abs && q.abs > fp32.abs);
        assert_eq!(variant_tolerance("int8-weight", &fp32), q);
        // A package that asked for more slack keeps it.
        let loose = Tolerance { abs: 1.0, rel: 1.0 };
        assert_eq!(variant_tolerance("int8", &loose), loose);
    }

    /// A float32 `.npy` (v1.0) for tests.
    pub fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let shape_s = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        for v in data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    #[test]
    fn tensor_names_become_safe_unique_file_names() {
        let mut taken = std::collections::BTreeSet::new();
        assert_eq!(
            tensor_file_name("save_infer_model/scale_0.tmp_1", &mut taken),
            "save_infer_model_scale_0.tmp_1.npy"
        );
        assert_eq!(tensor_file_name("..", &mut taken), "tensor__.npy");
        assert_eq!(tensor_file_name("X", &mut taken), "X.npy");
        assert_eq!(tensor_file_name("x", &mut taken), "x-1.npy");
        assert_eq!(tensor_file_name("a/b", &mut taken), "a_b.npy");
        assert_eq!(tensor_file_name("a:b", &mut taken), "a_b-1.npy");
    }

    #[test]
    fn reads_npy_header() {
        let b = npy_f32(&[2, 3], &[0.0; 6]);
        assert_eq!(npy_header(&b).unwrap(), ("<f4".to_string(), vec![2, 3]));
        assert!(npy_header(&b[..b.len() - 1]).unwrap_err().contains("need"));
        assert!(npy_header(b"garbage!!!!").unwrap_err().contains("magic"));
    }
}

/// The self-test runner backed by ONNX Runtime (loaded on first use).
pub struct OrtRunner {
    /// An explicit library (`--ort-lib`), else the usual search.
    pub library: Option<std::path::PathBuf>,
}

impl Runner for OrtRunner {
    fn run(
        &self,
        model: &[u8],
        ctx: &ExecutionContext,
        inputs: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(BTreeMap<String, Vec<u8>>, String)> {
        let info = crate::runtime::ensure(self.library.as_deref())?;
        let m = crate::model::Model::from_bytes(model, Path::new("package model"))?;
        let mut session = crate::runtime::Session::from_model(&m, ctx)?;
        let mut feed = Vec::with_capacity(inputs.len());
        for (name, bytes) in inputs {
            let t = crate::tensor::npy::parse_npy(bytes, Path::new(&format!("{name}.npy")))?;
            feed.push((name.clone(), t));
        }
        let outs = session.run(&feed)?;
        let mut out = BTreeMap::new();
        for (name, t) in outs {
            out.insert(name, crate::tensor::npy::to_npy_bytes(&t)?);
        }
        let providers: Vec<&str> = ctx.execution_providers.iter().map(|p| p.name()).collect();
        Ok((
            out,
            format!(
                "onnxruntime {} ({})",
                info.version.as_deref().unwrap_or("unknown version"),
                providers.join(",")
            ),
        ))
    }
}

/// The outcome of one self-test case on this machine.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    pub name: String,
    /// Largest |actual - expected| over all outputs.
    pub max_abs_diff: f64,
    /// Problems (mismatched shapes, values past the tolerance); empty when it passed.
    pub problems: Vec<String>,
}

/// The self-test tolerance of a variant's outputs on the device, from the package's (fp32) one.
///
/// A bundle's expected outputs are computed where it is made (x86_64); the device runs other
/// kernels. fp32 differs by summation order only (the package's tolerance). fp16 and int8
/// kernels differ more between architectures: ARM has native fp16 arithmetic where x86 widens
/// to fp32, and ONNX Runtime's int8 GEMMs use other instructions (x86 u8s8 `vpmaddubsw`, ARM
/// `sdot`/`udot` or widening multiplies), so a requantized value can land one step apart and
/// the step propagates. Measured on emulated Cortex-A72 and A76 boards against x86_64
/// expected outputs (PP-OCR det, one seeded 64x64 input, `scripts/arm-device-check.sh`,
/// RELIABILITY.md): max |diff| 8.9e-8 (fp32), 3.0e-8 / 6.0e-8 (fp16, A72 / A76), 8.9e-8
/// (int8). One input is thin evidence, so the bounds keep room for what the kernels can do:
/// about one fp16 ulp of a [0, 1] output near 1 (1e-3), and 2.5 steps of an 8-bit
/// [0, 1] output (1e-2) for int8, instead of the measured figures.
pub fn variant_tolerance(variant: &str, fp32: &Tolerance) -> Tolerance {
    let floor = |abs: f64, rel: f64| Tolerance {
        abs: fp32.abs.max(abs),
        rel: fp32.rel.max(rel),
    };
    if variant.starts_with("fp16") {
        floor(FP16_ABS, 1e-3)
    } else if variant.starts_with("int") {
        floor(INT_ABS, 0.0)
    } else {
        fp32.clone()
    }
}

/// See [`variant_tolerance`].
const FP16_ABS: f64 = 1e-3;
const INT_ABS: f64 = 1e-2;

/// Run every self-test case of a verified archive with `runner` on the variant at
/// `model_path` (inside the archive) and compare with the expected outputs.
pub fn run_cases(
    manifest: &super::Manifest,
    archive: &super::archive::Archive,
    model_path: &str,
    runner: &dyn Runner,
) -> Result<Vec<CaseResult>> {
    let model = archive.entries.get(model_path).ok_or_else(|| {
        Error::usage("self-test", format!("'{model_path}' is not in the archive"))
    })?;
    // The variant runs with its own session entries on top of the package's context.
    let execution = match manifest.variant_at(model_path) {
        Some(v) => manifest.execution_for(v),
        None => manifest.execution.clone(),
    };
    let mut results = vec![];
    for case in &manifest.self_test {
        let mut inputs = BTreeMap::new();
        for (n, p) in &case.inputs {
            inputs.insert(
                n.clone(),
                archive.entries.get(p).cloned().unwrap_or_default(),
            );
        }
        let (actual, _) = runner.run(model, &execution, &inputs)?;
        let mut r = CaseResult {
            name: case.name.clone(),
            max_abs_diff: 0.0,
            problems: vec![],
        };
        for (n, p) in &case.expected {
            let origin = Path::new(p);
            let want = crate::tensor::npy::parse_npy(
                archive.entries.get(p).map(|v| v.as_slice()).unwrap_or(&[]),
                origin,
            )?;
            let Some(got) = actual.get(n) else {
                r.problems.push(format!("output '{n}' was not produced"));
                continue;
            };
            let got = crate::tensor::npy::parse_npy(got, origin)?;
            if got.shape() != want.shape() {
                r.problems.push(format!(
                    "output '{n}': shape {:?}, expected {:?}",
                    got.shape(),
                    want.shape()
                ));
                continue;
            }
            let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
            let mut bad = 0usize;
            for (a, e) in g.iter().zip(&w) {
                let d = (a - e).abs();
                if d.is_nan() || d > case.tolerance.abs + case.tolerance.rel * e.abs() {
                    bad += 1;
                }
                if d > r.max_abs_diff || d.is_nan() {
                    r.max_abs_diff = d;
                }
            }
            if bad > 0 {
                r.problems.push(format!(
                    "output '{n}': {bad} of {} values outside abs {} + rel {} (max |diff| {:.3e})",
                    w.len(),
                    case.tolerance.abs,
                    case.tolerance.rel,
                    r.max_abs_diff
                ));
            }
        }
        results.push(r);
    }
    Ok(results)
}
