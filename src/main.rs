use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use envc::diag::{Problem, Style, render};
use envc::plan::Plan;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Build LXD-style system containers from TOML profiles, and run them.
#[derive(Parser)]
#[command(name = "envc", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate profiles: TOML, schema and meaning. Exit 2 if any is invalid.
    Check {
        /// Profile files; each is checked as the top of its own stack.
        #[arg(required = true)]
        profiles: Vec<PathBuf>,
    },
    /// Compile a profile into its plan, without touching the host.
    Plan {
        profile: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write the plan to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Build the container and run its init in the foreground.
    Apply {
        /// The profile (or use --plan).
        #[arg(required_unless_present = "plan", conflicts_with = "plan")]
        profile: Option<PathBuf>,
        /// Replay a saved JSON plan instead of compiling a profile.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Print the plan and stop (same output as `envc plan`).
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write the report as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Print the profile language's JSON Schema.
    Schema,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { profiles } => {
            let mut all = Vec::new();
            for p in &profiles {
                match envc::profile::load(p) {
                    Ok((profile, _)) => {
                        let plan = envc::compile::compile(&profile);
                        if let Err(e) = plan.check() {
                            all.push(Problem::new(format!(
                                "internal: the compiled plan is inconsistent: {e}"
                            )));
                        } else {
                            eprintln!("{}: ok ({} steps)", p.display(), plan.steps.len());
                        }
                    }
                    Err(mut problems) => all.append(&mut problems),
                }
            }
            if all.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprint!("{}", render(&all, Style::for_stderr()));
                ExitCode::from(2)
            }
        }
        Command::Plan {
            profile,
            format,
            output,
        } => match compile_profile(&profile) {
            Ok(plan) => emit_plan(&plan, format, output.as_deref()),
            Err(code) => code,
        },
        Command::Apply {
            profile,
            plan,
            dry_run,
            format,
            report: _,
        } => {
            let compiled = match (&profile, &plan) {
                (Some(p), _) => compile_profile(p),
                (None, Some(file)) => load_plan(file),
                (None, None) => unreachable!("clap requires one"),
            };
            let plan = match compiled {
                Ok(p) => p,
                Err(code) => return code,
            };
            if dry_run {
                return emit_plan(&plan, format, None);
            }
            eprintln!("envc: apply is not implemented yet; use --dry-run to see the plan");
            ExitCode::from(125)
        }
        Command::Schema => {
            print!("{}", envc::profile::raw::schema_text());
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "envc", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

fn compile_profile(path: &Path) -> Result<Plan, ExitCode> {
    match envc::profile::load(path) {
        Ok((profile, _)) => {
            let plan = envc::compile::compile(&profile);
            if let Err(e) = plan.check() {
                eprintln!("envc: internal error: the compiled plan is inconsistent: {e}");
                return Err(ExitCode::from(125));
            }
            Ok(plan)
        }
        Err(problems) => {
            eprint!("{}", render(&problems, Style::for_stderr()));
            Err(ExitCode::from(2))
        }
    }
}

fn load_plan(path: &Path) -> Result<Plan, ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("envc: cannot read plan {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    Plan::from_json(&text).map_err(|e| {
        eprintln!("envc: {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn emit_plan(plan: &Plan, format: Format, output: Option<&Path>) -> ExitCode {
    let text = match format {
        Format::Text => plan.to_text(),
        Format::Json => plan.to_json(),
    };
    match output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("envc: cannot write {}: {e}", path.display());
                ExitCode::from(1)
            }
        },
    }
}
