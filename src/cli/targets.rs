//! `edgepack targets [DIR]`: list the built-in hardware targets, those of a folder, and the
//! detected host.

use std::path::PathBuf;

use clap::Args;
use edgepack::hardware::{self, Target};
use edgepack::units::format_bytes as human_bytes;

use super::Outcome;

#[derive(Debug, Args)]
pub struct TargetsArgs {
    /// Folder of more hardware target files, added to the built-in ones (a file with a
    /// built-in target's name replaces it).
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: TargetsArgs) -> anyhow::Result<Outcome> {
    let mut targets: Vec<Target> = hardware::builtin_and(args.dir.as_deref())?
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    targets.push(hardware::host());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&targets)?);
        return Ok(Outcome::Success);
    }
    let rows: Vec<[String; 8]> = targets
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.arch.as_str().to_string(),
                t.cores.to_string(),
                human_bytes(t.ram_bytes),
                human_bytes(t.model_ram_bytes()),
                if t.storage_budget_bytes == u64::MAX {
                    "-".to_string()
                } else {
                    human_bytes(t.storage_budget_bytes)
                },
                format!("{:.2}", t.relative_compute),
                t.execution_providers.join(","),
            ]
        })
        .collect();
    let header = [
        "target",
        "arch",
        "cores",
        "ram",
        "model ram",
        "storage",
        "compute",
        "providers",
    ];
    let mut table = edgepack::table::Table::new(header);
    for r in rows {
        table.row(r);
    }
    print!("{table}");
    Ok(Outcome::Success)
}
