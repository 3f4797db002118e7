//! `onedoor mappings check | list | sources | show NAME`: lint every mapping (file:line for each problem),
//! list them, list the sources (adapters) they may read, or render one as a crosswalk in Markdown or HTML.

use super::{Cli, exit_code};
use crate::adapters::registry;
use crate::mapping::{catalog, crosswalk, lint};
use std::process::ExitCode;

/// The `mappings` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Lint every mapping; exit 1 on any problem.
    Check,
    /// List the mappings with their adapter and title.
    List,
    /// List the sources (adapters) mappings may name: what each reads and the record kinds it yields.
    Sources,
    /// Render a mapping as a crosswalk (source field → target element → transformation).
    Show {
        /// The mapping's name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
    },
}

/// Crosswalk formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Markdown tables.
    Markdown,
    /// A standalone HTML page.
    Html,
}

/// Run a `mappings` subcommand.
pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check => {
            let (count, problems) = lint::check_all(&cli.mappings, &registry::descriptions());
            for problem in &problems {
                println!("{problem}");
            }
            println!("{count} mapping(s) checked, {} problem(s)", problems.len());
            Ok(exit_code(!problems.is_empty()))
        }
        Command::List => {
            for path in catalog::mapping_files(&cli.mappings) {
                match catalog::load(&path) {
                    Ok(m) => println!(
                        "{:<24} {:<14} {}",
                        m.name(),
                        m.file.mapping.adapter.get_ref(),
                        m.file.mapping.title.clone().unwrap_or_default()
                    ),
                    Err(problem) => println!("{problem}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sources => {
            for source in registry::descriptions() {
                println!("{:<14} {}", source.name, source.reads);
                println!("{:<14} records: {}", "", source.record_kinds.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { name, format } => {
            let mapping = catalog::find(&cli.mappings, name)?;
            let text = match format {
                Format::Markdown => crosswalk::markdown(&mapping),
                Format::Html => crosswalk::html(&mapping),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
