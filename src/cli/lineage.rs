//! `edgepack lineage ARCHIVE`: where a bundle or package came from, from bundle to variant
//! to package to source model, datasets and code.

use std::path::PathBuf;

use clap::Args;
use edgepack::package::{self, manifest::Kind};

use super::Outcome;

#[derive(Debug, Args)]
pub struct LineageArgs {
    /// The bundle (.zip) or package (.edgepkg). It is verified first.
    pub archive: PathBuf,
    /// Print the lineage record as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: LineageArgs) -> anyhow::Result<Outcome> {
    let opened = package::open(&args.archive, None)?;
    let m = &opened.manifest;
    let l = &m.lineage;
    if args.json {
        println!("{}", serde_json::to_string_pretty(l)?);
        return Ok(Outcome::Success);
    }
    let short = |s: &Option<String>| {
        s.as_deref()
            .map(|h| format!(" sha256:{}", &h[..h.len().min(16)]))
            .unwrap_or_default()
    };
    let kind = match m.kind {
        Kind::Bundle => "bundle",
        Kind::Package => "package",
    };
    println!("{kind} {} ({})", m.name, args.archive.display());
    if let Some(t) = &m.target {
        println!(
            "  for target {} ({}), variant {}",
            t.name, t.arch, t.variant
        );
        let p = &t.prediction;
        println!(
            "  predicted: {} threads, batch {}, p50 {}, peak memory {} ({})",
            p.threads,
            p.batch,
            p.latency_p50_s
                .map(|s| format!("{:.1} ms", s * 1e3))
                .unwrap_or_else(|| "?".into()),
            p.peak_memory_bytes
                .map(edgepack::units::format_bytes)
                .unwrap_or_else(|| "?".into()),
            p.basis
        );
    }
    for v in m.components.iter().flat_map(|c| c.variants.iter()) {
        println!("  variant {} {} sha256:{}", v.name, v.path, &v.sha256[..16]);
    }
    if let Some(p) = &l.parent {
        println!("  <- from {}{}", p.uri, short(&p.sha256));
    }
    match &l.source_model {
        Some(s) => println!("  <- source model {}{}", s.uri, short(&s.sha256)),
        None => println!("  <- source model: not recorded"),
    }
    for d in &l.datasets {
        println!(
            "  dataset {}{}{}",
            d.name
                .as_deref()
                .map(|n| format!("{n}: "))
                .unwrap_or_default(),
            d.uri,
            short(&d.sha256)
        );
    }
    for c in &l.code {
        println!(
            "  code {}{}{}",
            c.name
                .as_deref()
                .map(|n| format!("{n}: "))
                .unwrap_or_default(),
            c.repository,
            c.commit
                .as_deref()
                .map(|c| format!(" @ {c}"))
                .unwrap_or_default()
        );
    }
    println!("  transformations:");
    for (i, t) in l.transformations.iter().enumerate() {
        let params: Vec<String> = t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "    {}. {} (edgepack {}) {}",
            i + 1,
            t.name,
            t.edgepack_version,
            params.join(" ")
        );
    }
    Ok(Outcome::Success)
}
