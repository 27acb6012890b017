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

/// Where generated self-test inputs get their sizes: `--shape NAME=DIMS` and
/// `--dim SYMBOL=N` values, as the other commands take them (symbolic dims left open are
/// given 1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeneratedInputs {
    pub shapes: Vec<String>,
    pub dims: Vec<String>,
    /// `--input-range NAME=LO..HI` values (a sample-rate scalar has no generated value).
    pub ranges: Vec<String>,
    pub seed: u64,
}

/// The name of a generated case (so a reader of the manifest knows where it came from).
pub const GENERATED_CASE: &str = "generated";

/// One self-test case whose inputs are generated from the model's signature (the input
/// model's rules, fixed seed) and whose expected outputs the caller computes. Why: a
/// package built without sample inputs still lets the device check on arrival that the
/// model loads, runs and gives the outputs it gave here.
pub fn generated_case(model: &crate::model::Model, gen: &GeneratedInputs) -> Result<SampleCase> {
    use crate::inputs::{self, InputSources, ShapeOverrides};
    let specs = inputs::model_inputs(model);
    let mut overrides = ShapeOverrides::from_args(&gen.shapes, &gen.dims)?;
    // Symbols nobody sized get 1: the smallest query the model accepts.
    for spec in &specs {
        for d in spec.dims.iter().flatten() {
            if let inputs::Dim::Symbol(sym) = d {
                if !gen
                    .dims
                    .iter()
                    .any(|a| a.split('=').next() == Some(sym.as_str()))
                {
                    let _ = overrides.add_dim_arg(&format!("{sym}=1"));
                }
            }
        }
    }
    let sources = InputSources {
        seed: gen.seed,
        ranges: inputs::ValueRanges::from_args(&gen.ranges)?,
        ..Default::default()
    };
    let tensors = inputs::prepare_for(&specs, &overrides, &sources)?;
    let mut out = BTreeMap::new();
    for (n, t) in tensors.tensors {
        out.insert(n, crate::tensor::npy::to_npy_bytes(&t)?);
    }
    Ok(SampleCase {
        name: GENERATED_CASE.into(),
        inputs: out,
        expected: None,
    })
}

/// The dtype name and shape of a `.npy` sample, read by the one `.npy` reader
/// ([`crate::tensor::npy`]), which also checks the data fits the header.
fn npy_signature(bytes: &[u8], origin: &Path) -> Result<(String, Vec<u64>)> {
    let t = crate::tensor::npy::parse_npy(bytes, origin)?;
    Ok((
        t.dtype().name().to_string(),
        t.shape().iter().map(|&d| d as u64).collect(),
    ))
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

fn read_npys(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy") && p.is_file())
        .collect();
    paths.sort();
    for p in paths {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        npy_signature(&bytes, &p)?;
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
            cd.file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
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
            let (dtype, shape) = npy_signature(bytes, &cd.join(format!("{}.npy", spec.name)))?;
            if dtype != spec.dtype {
                return Err(Error::input(
                    &spec.name,
                    format!(
                        "sample in {} is {}, the model wants {}",
                        cd.display(),
                        dtype,
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

    /// A float32 `.npy` for tests (through the one `.npy` writer).
    pub fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
        let t = crate::tensor::Tensor::from_f32(shape.to_vec(), data.to_vec()).unwrap();
        crate::tensor::npy::to_npy_bytes(&t).unwrap()
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
    fn reads_npy_signature() {
        let b = npy_f32(&[2, 3], &[0.0; 6]);
        let p = Path::new("x.npy");
        assert_eq!(
            npy_signature(&b, p).unwrap(),
            ("float32".to_string(), vec![2, 3])
        );
        assert!(npy_signature(&b[..b.len() - 1], p).is_err());
        let e = npy_signature(b"garbage!!!!", p).unwrap_err().to_string();
        assert!(e.contains("magic"), "{e}");
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
    /// For a quantized variant of a package, judged against the original's expected
    /// outputs: the worst output SQNR (dB) it reached. `None` for exact comparisons.
    pub sqnr_db: Option<f64>,
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
    let variant = manifest.variant_at(model_path);
    let execution = match variant {
        Some(v) => manifest.execution_for(v),
        None => manifest.execution.clone(),
    };
    // A package's expected outputs belong to the original (fp32). A quantized variant is
    // not expected to reproduce them within the exact tolerance: it must run, produce
    // every output with the right shape and finite values, and its SQNR against the
    // original is reported. (A bundle recomputes the expected outputs of its variant, so
    // there every variant is compared exactly.)
    let against_original = manifest.kind == super::manifest::Kind::Package
        && variant.is_some_and(|v| v.name != "fp32");
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
            sqnr_db: None,
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
            if against_original {
                let nonfinite = g.iter().filter(|x| !x.is_finite()).count();
                if nonfinite > 0 {
                    r.problems.push(format!(
                        "output '{n}': {nonfinite} of {} values are not finite",
                        g.len()
                    ));
                    continue;
                }
                let (signal, noise) = g.iter().zip(&w).fold((0.0, 0.0), |(s, e), (a, x)| {
                    (s + x * x, e + (a - x) * (a - x))
                });
                for (a, x) in g.iter().zip(&w) {
                    r.max_abs_diff = r.max_abs_diff.max((a - x).abs());
                }
                if let Some(db) = crate::quantize::accuracy::sqnr_db(signal, noise) {
                    r.sqnr_db = Some(r.sqnr_db.map_or(db, |m: f64| m.min(db)));
                }
                continue;
            }
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
