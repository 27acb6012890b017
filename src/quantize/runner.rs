//! What the quantizer needs from an inference engine: load a model from bytes, feed named
//! tensors of any element type (token ids are int64, byte inputs int32), read named
//! outputs. A trait so the statistics (calibration, accuracy, latency ratio) are testable
//! with a deterministic mock, and so the passes never see ONNX Runtime: its implementation
//! is [`super::engine::RuntimeEngine`], on `runtime::Session`.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor, TensorData};

/// A named tensor in C order, of any element type the crate holds.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Tensor (graph input/output) name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements, C order.
    pub data: TensorData,
}

impl NamedTensor {
    /// A float32 tensor.
    pub fn f32(name: &str, shape: Vec<usize>, data: Vec<f32>) -> Self {
        NamedTensor {
            name: name.to_string(),
            shape,
            data: TensorData::F32(data),
        }
    }

    /// The crate's tensor (checks that shape and data agree).
    pub fn from_tensor(name: &str, t: Tensor) -> Self {
        NamedTensor {
            name: name.to_string(),
            shape: t.shape().to_vec(),
            data: t.into_data(),
        }
    }

    /// As the crate's tensor, for the runtime.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Tensor::new(self.shape.clone(), self.data.clone())
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Whether the elements are floating point (float32/16/64, bfloat16): the tensors
    /// statistics and SQNR apply to; integer and bool tensors are compared exactly.
    pub fn is_float(&self) -> bool {
        self.dtype().is_float()
    }

    /// The elements as float32: borrowed for float32, converted otherwise.
    pub fn floats(&self) -> std::borrow::Cow<'_, [f32]> {
        match &self.data {
            TensorData::F32(v) => std::borrow::Cow::Borrowed(v),
            _ => std::borrow::Cow::Owned(
                Tensor::new(self.shape.clone(), self.data.clone())
                    .map(|t| t.to_f32_vec())
                    .unwrap_or_default(),
            ),
        }
    }
}

/// One model input set (one sample or one batch).
pub type Feed = Vec<NamedTensor>;

/// A loaded model ready to run (on any thread: evaluation runs several at once).
pub trait ModelRunner: Send {
    /// Run with `inputs`; return the requested `outputs` (all graph outputs when empty),
    /// in the order asked.
    fn run(&mut self, inputs: &[NamedTensor], outputs: &[String]) -> Result<Vec<NamedTensor>>;
}

/// `f` applied to every item on `threads` threads, each taking the next item in order; the
/// results in the items' order.
pub fn map_on_threads<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    let work = || {
        let mut done = Vec::new();
        while let Some((i, item)) = next() {
            done.push((i, f(item)));
        }
        done
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|s| {
        let others: Vec<_> = (1..threads.min(n).max(1)).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in others {
            // `f` does not panic in this crate's uses; a panic would be a bug, re-raised.
            all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        all
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Run `feeds[i]` on `workers[i]`, each on its own thread (one feed: on this one), asking
/// for `outputs[i]`; the results in feed order. `feeds` must not outnumber `workers`.
pub fn run_side_by_side(
    workers: &mut [Box<dyn ModelRunner>],
    feeds: &[Feed],
    outputs: &[&[String]],
) -> Result<Vec<Vec<NamedTensor>>> {
    if feeds.len() > workers.len() || feeds.len() != outputs.len() {
        return Err(Error::Runtime(format!(
            "{} samples for {} runners and {} output lists",
            feeds.len(),
            workers.len(),
            outputs.len()
        )));
    }
    if let ([w, ..], [f], [o]) = (&mut *workers, feeds, outputs) {
        return Ok(vec![w.run(f, o)?]);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .zip(feeds.iter().zip(outputs))
            .map(|(w, (f, o))| s.spawn(move || w.run(f, o)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Runtime("a model run panicked".into())))
            })
            .collect()
    })
}

/// ONNX Runtime session configuration entries (`AddSessionConfigEntry`) a model needs.
pub type SessionConfig = std::collections::BTreeMap<String, String>;

/// Loads models into runners (from several threads at once: the accuracy guard ranks
/// nodes side by side).
pub trait Engine: Sync {
    /// Load a model from its encoded bytes, optimized for inference, using every core
    /// (evaluation runs).
    fn load(&self, model_bytes: &[u8]) -> Result<Box<dyn ModelRunner>>;
    /// Load a model for latency measurement, with the session settings the user asked for
    /// (the same for both models being compared).
    fn load_for_timing(&self, model_bytes: &[u8]) -> Result<Box<dyn ModelRunner>>;
    /// Load a model with graph optimizations limited to the basic (semantics-preserving,
    /// provider-independent) level, so every tensor asked for is still computed as written.
    fn load_for_calibration(&self, model_bytes: &[u8]) -> Result<Box<dyn ModelRunner>>;
    /// [`Engine::load_for_calibration`] for running `samples` samples side by side, one per
    /// runner ([`run_side_by_side`]). One runner unless the engine knows better.
    fn load_calibration_workers(
        &self,
        model_bytes: &[u8],
        samples: usize,
    ) -> Result<Vec<Box<dyn ModelRunner>>> {
        let _ = samples;
        Ok(vec![self.load_for_calibration(model_bytes)?])
    }
    /// The model as ONNX Runtime's basic-level offline graph optimization leaves it
    /// (constant folding, redundant-node removal, Conv+BatchNorm/Add/Mul fusion), for
    /// preparing a quantization from it instead of from the original. `None` when the
    /// engine cannot (test mocks).
    fn optimize_offline(&self, model_bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        let _ = model_bytes;
        Ok(None)
    }
    /// How many runners of a model of `model_bytes` bytes may run side by side, each on its
    /// own thread (each holds its own copy of the model). One unless the engine knows
    /// better.
    fn side_by_side(&self, model_bytes: usize) -> usize {
        let _ = model_bytes;
        1
    }
    /// [`Engine::load_configured`] on a single thread, for running several models side by
    /// side. Engines without thread settings (test mocks) run it as [`Engine::load`] would.
    fn load_single_thread(
        &self,
        model_bytes: &[u8],
        config: &SessionConfig,
    ) -> Result<Box<dyn ModelRunner>> {
        self.load_configured(model_bytes, config, false)
    }
    /// Runners of one model for evaluating it on `samples` samples, each runner on its own
    /// thread, with `config` as [`Engine::load_configured`] takes it. One runner (every
    /// core) unless the engine knows better.
    fn load_workers(
        &self,
        model_bytes: &[u8],
        config: &SessionConfig,
        samples: usize,
    ) -> Result<Vec<Box<dyn ModelRunner>>> {
        let _ = samples;
        Ok(vec![self.load_configured(model_bytes, config, false)?])
    }
    /// [`Engine::load`] (or [`Engine::load_for_timing`] when `timing`) with extra session
    /// configuration entries, as a quantized model's report prescribes. Engines without
    /// session options (test mocks) run the model as [`Engine::load`] would.
    fn load_configured(
        &self,
        model_bytes: &[u8],
        config: &SessionConfig,
        timing: bool,
    ) -> Result<Box<dyn ModelRunner>> {
        let _ = config;
        if timing {
            self.load_for_timing(model_bytes)
        } else {
            self.load(model_bytes)
        }
    }
}

/// Latency of `b` relative to `a`, measured interleaved (A B A B ...) on the same feed so
/// that machine noise hits both alike: the median of per-pair ratios `t_b / t_a`.
///
/// Protocol: one warm-up run each, then pairs until `min_pairs` are done and either
/// `max_pairs` are done or `budget_s` has elapsed. Returns the ratio with both medians and
/// the number of pairs run ([`LatencyRatio`]).
pub fn latency_ratio(
    a: &mut dyn ModelRunner,
    b: &mut dyn ModelRunner,
    feed: &[NamedTensor],
    min_pairs: usize,
    max_pairs: usize,
    budget_s: f64,
) -> Result<LatencyRatio> {
    a.run(feed, &[])?;
    b.run(feed, &[])?;
    let start = Instant::now();
    let mut ta = Vec::new();
    let mut tb = Vec::new();
    while ta.len() < max_pairs && (ta.len() < min_pairs || start.elapsed().as_secs_f64() < budget_s)
    {
        // Alternate which runs first so neither always profits from a warm cache.
        let first_a = ta.len() % 2 == 0;
        let (x, y) = if first_a {
            (time(a, feed)?, time(b, feed)?)
        } else {
            let y = time(b, feed)?;
            (time(a, feed)?, y)
        };
        ta.push(x);
        tb.push(y);
    }
    let mut ratios: Vec<f64> = ta.iter().zip(&tb).map(|(x, y)| y / x).collect();
    Ok(LatencyRatio {
        ratio: median(&mut ratios).unwrap_or(f64::NAN),
        a_p50_s: median(&mut ta.clone()).unwrap_or(f64::NAN),
        b_p50_s: median(&mut tb.clone()).unwrap_or(f64::NAN),
        pairs: ta.len(),
    })
}

/// Result of [`latency_ratio`].
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct LatencyRatio {
    /// Median of per-pair `t_b / t_a`.
    pub ratio: f64,
    /// Median latency of model A, seconds.
    pub a_p50_s: f64,
    /// Median latency of model B, seconds.
    pub b_p50_s: f64,
    /// Number of interleaved pairs measured.
    pub pairs: usize,
}

fn time(r: &mut dyn ModelRunner, feed: &[NamedTensor]) -> Result<f64> {
    let t = Instant::now();
    r.run(feed, &[])?;
    Ok(t.elapsed().as_secs_f64())
}

/// Median (mean of the two middle values for even counts); `None` when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_degenerate_inputs() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [1.0, 3.0]), Some(2.0));
        assert_eq!(median(&mut [2.0, 2.0, 2.0]), Some(2.0));
    }

    #[test]
    fn more_samples_than_runners_is_an_error_not_a_dropped_sample() {
        struct Echo;
        impl ModelRunner for Echo {
            fn run(&mut self, inputs: &[NamedTensor], _: &[String]) -> Result<Vec<NamedTensor>> {
                Ok(inputs.to_vec())
            }
        }
        let feeds: Vec<Feed> = (0..3)
            .map(|i| vec![NamedTensor::f32("x", vec![1], vec![i as f32])])
            .collect();
        let names: Vec<&[String]> = vec![&[]; 3];
        let mut two: Vec<Box<dyn ModelRunner>> = vec![Box::new(Echo), Box::new(Echo)];
        assert!(run_side_by_side(&mut two, &feeds, &names).is_err());
        let got = run_side_by_side(&mut two, &feeds[1..], &names[1..]).unwrap();
        assert_eq!(got, vec![feeds[1].clone(), feeds[2].clone()]);
    }

    #[test]
    fn mapping_on_threads_keeps_the_items_order() {
        // Uneven work, so threads finish out of order.
        let items: Vec<u64> = (0..40).collect();
        let f = |i: u64| (0..(40 - i) * 2000).fold(i, |a, b| a ^ b.rotate_left(7));
        let want: Vec<u64> = items.iter().map(|&i| f(i)).collect();
        for threads in [1, 2, 5, 64] {
            assert_eq!(map_on_threads(items.clone(), threads, f), want, "{threads}");
        }
        assert!(map_on_threads(Vec::<u8>::new(), 4, |x| x).is_empty());
    }
}
