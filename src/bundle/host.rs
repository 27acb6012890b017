//! The host's compute figure, by which profiles measured here are scaled to each target.

use std::path::Path;

use crate::error::{Error, Result};
use crate::hardware;
use crate::profile::schema::Profile;
use crate::setting::Setting;

/// The host compute figure and its basis for scaling `profiles` (none without profiles):
/// `explicit` when given, else an estimate placing the host among the devices in
/// `hardware_dir`. An estimate from this host's clock is refused for profiles measured on
/// another CPU, whose figure must then be given.
pub fn host_compute(
    explicit: Option<f64>,
    profiles: &[Profile],
    hardware_dir: Option<&Path>,
) -> Result<Option<(f64, String)>> {
    if profiles.is_empty() {
        return Ok(None);
    }
    if let Some(v) = explicit {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::usage(
                Setting::HostCompute,
                format!("{v} is not a positive number"),
            ));
        }
    }
    let cpu = &profiles[0].host.cpu_model;
    let here = hardware::host();
    let c = hardware::host_relative_compute(explicit, cpu, hardware_dir);
    let clock_based = c.basis.contains("estimated from");
    if clock_based && !cpu.is_empty() && cpu != &here.cpu_model {
        return Err(Error::usage(
            Setting::HostCompute,
            format!("the profile was measured on '{cpu}', not this host; give its compute figure"),
        ));
    }
    Ok(Some((c.relative_compute, c.basis)))
}
