//! Image preprocessing, declared rather than implied: how a picture becomes the model's
//! input tensor. The same struct is meant to travel inside packages, so a deployed model
//! and its calibration data are normalised identically.
//!
//! `value = (pixel * scale - mean[c]) / std[c]`, after an optional bilinear resize and
//! channel reordering, laid out as NCHW or NHWC with a batch of one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::setting::Setting;

/// Tensor layout of an image input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Batch, channels, height, width.
    Nchw,
    /// Batch, height, width, channels.
    Nhwc,
}

/// Channel order of the tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV-trained models).
    Bgr,
}

/// How an image becomes an input tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Resize to `[height, width]` (bilinear); `None` keeps the image's size.
    pub resize: Option<[u32; 2]>,
    /// Tensor layout.
    pub layout: Layout,
    /// Channel order.
    pub channel_order: ChannelOrder,
    /// Multiplier applied to 0..255 pixel values first (e.g. 1/255).
    pub scale: f32,
    /// Per-channel mean subtracted after scaling (in tensor channel order).
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by last (in tensor channel order).
    pub std: [f32; 3],
}

impl Default for Preprocess {
    /// Pixels to [0, 1], RGB, NCHW, no resize.
    fn default() -> Self {
        Preprocess {
            resize: None,
            layout: Layout::Nchw,
            channel_order: ChannelOrder::Rgb,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }
}

impl Preprocess {
    /// Check the values can be applied (no zero std, positive resize).
    pub fn validate(&self) -> Result<()> {
        if self.std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return Err(Error::usage(
                Setting::Std,
                "every standard deviation must be non-zero",
            ));
        }
        if self.resize.is_some_and(|[h, w]| h == 0 || w == 0) {
            return Err(Error::usage(
                Setting::Resize,
                "height and width must be positive",
            ));
        }
        Ok(())
    }

    /// Decode an image file and turn it into `(shape, data)` with a batch of one.
    pub fn load(&self, path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
        let img = image::open(path)
            .map_err(|e| Error::file(path, format!("cannot decode image: {e}")))?
            .to_rgb8();
        let img = match self.resize {
            Some([h, w]) if img.height() != h || img.width() != w => {
                image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
            }
            _ => img,
        };
        Ok(self.apply(img.width() as usize, img.height() as usize, img.as_raw()))
    }

    /// Normalise interleaved RGB8 pixels (`width x height x 3`).
    pub fn apply(&self, width: usize, height: usize, rgb: &[u8]) -> (Vec<usize>, Vec<f32>) {
        let plane = width * height;
        let mut out = vec![0.0f32; plane * 3];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let src = match self.channel_order {
                    ChannelOrder::Rgb => px[c],
                    ChannelOrder::Bgr => px[2 - c],
                };
                let v = (src as f32 * self.scale - self.mean[c]) / self.std[c];
                match self.layout {
                    Layout::Nchw => out[c * plane + i] = v,
                    Layout::Nhwc => out[i * 3 + c] = v,
                }
            }
        }
        let shape = match self.layout {
            Layout::Nchw => vec![1, 3, height, width],
            Layout::Nhwc => vec![1, height, width, 3],
        };
        (shape, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_lays_out_nchw_bgr() {
        let p = Preprocess {
            channel_order: ChannelOrder::Bgr,
            scale: 1.0 / 255.0,
            mean: [0.5; 3],
            std: [0.5; 3],
            ..Default::default()
        };
        // 2x1 image: a red pixel then a white pixel.
        let (shape, v) = p.apply(2, 1, &[255, 0, 0, 255, 255, 255]);
        assert_eq!(shape, vec![1, 3, 1, 2]);
        // Channel 0 is blue: -1 for red, 1 for white; channel 2 is red: 1, 1.
        assert_eq!(v, vec![-1.0, 1.0, -1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn nhwc_keeps_pixels_interleaved() {
        let p = Preprocess {
            layout: Layout::Nhwc,
            scale: 1.0,
            ..Default::default()
        };
        let (shape, v) = p.apply(1, 1, &[1, 2, 3]);
        assert_eq!(shape, vec![1, 1, 1, 3]);
        assert_eq!(v, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn rejects_zero_std() {
        let p = Preprocess {
            std: [1.0, 0.0, 1.0],
            ..Default::default()
        };
        assert!(p.validate().is_err());
    }
}
