#![cfg_attr(all(not(test), target_env = "gnu"), no_main)]

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use envc::diag::{Problem, Style, render};
use envc::plan::Plan;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `malloc`, or the arena for a big one-shot load (see `envc::alloc`).
#[global_allocator]
static ALLOC: envc::alloc::Alloc = envc::alloc::Alloc;

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
        /// Print where the time went (load, compile, check, output) on stderr.
        #[arg(long)]
        timings: bool,
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
        /// Use this rootfs instead of the plan's.
        #[arg(long, value_name = "DIR")]
        rootfs: Option<PathBuf>,
        /// Detach: return once PID 1 runs, leaving the supervisor in the background.
        #[arg(short, long)]
        detach: bool,
        /// Print where the time went (milestones, and the steps per phase).
        #[arg(long)]
        timings: bool,
    },
    /// List containers (running, or left behind by a supervisor that died).
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Stop a container cleanly (SIGRTMIN+3 or SIGPWR, then SIGKILL after the timeout).
    Stop {
        name: String,
        /// Seconds to wait before killing (default: the profile's stop-timeout).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Kill at once.
        #[arg(long)]
        force: bool,
    },
    /// Reboot a container (the profile's reboot-signal; stop and start if ignored).
    Reboot { name: String },
    /// Attach to a running container's console (Ctrl-a q detaches).
    Console { name: String },
    /// Remove what containers whose supervisor died left behind.
    Gc,
    /// Print the profile language's JSON Schema.
    Schema,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

// envc's entry point is the C one: Rust's runtime set-up before `fn main`
// finds the main thread's stack by reading /proc/self/maps and gives it and
// every later thread an alternate signal stack, for a message on stack
// overflow (about twenty syscalls). A stack overflow still stops envc (the
// guard page), without that message. `runtime_start` does the rest of that
// set-up.
// (glibc only: std reads the arguments from glibc's `.init_array` call;
// elsewhere envc starts the usual way.)
#[cfg(all(not(test), target_env = "gnu"))]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    envc::sys::runtime_start();
    // A panic (in a build that unwinds) ends with status 101, as it would
    // after `fn main`.
    let status = std::panic::catch_unwind(run).map_or(101, status_of);
    // Flushes standard output (as Rust's runtime does after `fn main`) and exits.
    std::process::exit(status)
}

#[cfg(all(not(test), not(target_env = "gnu")))]
fn main() -> ExitCode {
    run()
}

/// The exit status an `ExitCode` stands for (std has no stable accessor;
/// every code envc makes is `ExitCode::from(u8)`, `SUCCESS` or `FAILURE`).
#[cfg(all(not(test), target_env = "gnu"))]
fn status_of(code: ExitCode) -> i32 {
    (0..=u8::MAX)
        .find(|n| ExitCode::from(*n) == code)
        .map_or(1, i32::from)
}

#[cfg_attr(test, allow(dead_code))]
fn run() -> ExitCode {
    envc::timing::start();
    let cli = Cli::parse();
    let one_shot: &[PathBuf] = match &cli.command {
        Command::Check { profiles } => profiles,
        Command::Plan { profile, .. } => std::slice::from_ref(profile),
        _ => &[],
    };
    if !one_shot.is_empty() {
        // Profiles of a quarter MiB and more (thousands of devices) parse in
        // huge pages, their small blocks from the arena; a small one would
        // only pay for zeroing the pages.
        let bytes: u64 = (one_shot.iter())
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        envc::sys::tune_malloc_for_one_shot(bytes >= 256 << 10);
    }
    match cli.command {
        Command::Check { profiles } => {
            let mut all = Vec::new();
            for (i, p) in profiles.iter().enumerate() {
                match envc::profile::load(p) {
                    Ok((mut profile, sources)) => {
                        let plan = envc::compile::compile_moving_raw_keys(&mut profile);
                        if let Err(e) = plan.check() {
                            all.push(Problem::new(format!(
                                "internal: the compiled plan is inconsistent: {e}"
                            )));
                        } else {
                            eprintln!("{}: ok ({} steps)", p.display(), plan.steps.len());
                        }
                        if i + 1 == profiles.len() {
                            one_shot_done((profile, sources, plan));
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
            timings,
        } => match compile_profile(&profile, format) {
            Ok((plan, text)) => {
                let code = write_plan(text, output.as_deref());
                one_shot_done(plan);
                if timings {
                    envc::timing::mark("plan written");
                    let marks = envc::timing::early();
                    eprint!(
                        "{}",
                        envc::timing::format_milestones(
                            marks.iter().map(|(w, us)| (w.as_str(), *us))
                        )
                    );
                }
                code
            }
            Err(code) => code,
        },
        Command::Apply {
            profile,
            plan,
            dry_run,
            format,
            report,
            rootfs,
            detach,
            timings,
        } => {
            let (compiled, sources, base) = match (&profile, &plan) {
                (Some(p), _) => match envc::profile::load(p) {
                    Ok((mut profile, sources)) => {
                        envc::timing::mark("profile loaded and checked");
                        let plan = envc::compile::compile_moving_raw_keys(&mut profile);
                        envc::timing::mark("plan compiled");
                        if let Err(e) = plan.check() {
                            eprintln!(
                                "envc: internal error: the compiled plan is inconsistent: {e}"
                            );
                            return ExitCode::from(125);
                        }
                        (plan, Some(sources), parent_dir(p))
                    }
                    Err(problems) => {
                        eprint!("{}", render(&problems, Style::for_stderr()));
                        return ExitCode::from(if dry_run { 2 } else { 125 });
                    }
                },
                (None, Some(file)) => match load_plan(file) {
                    Ok(p) => (p, None, parent_dir(file)),
                    Err(_) if !dry_run => return ExitCode::from(125),
                    Err(code) => return code,
                },
                (None, None) => unreachable!("clap requires one"),
            };
            if dry_run {
                return emit_plan(&compiled, format, None);
            }
            let rootfs = rootfs.unwrap_or_else(|| base.join(&compiled.rootfs));
            let code = envc::lifecycle::start(
                &compiled,
                rootfs,
                sources.as_ref(),
                report.as_deref(),
                detach,
                timings,
            );
            // The plan and the sources are plain data: the exit frees them
            // at once (`plan` and `check` leave theirs the same way).
            std::mem::forget(compiled);
            std::mem::forget(sources);
            code
        }
        Command::List { format } => envc::lifecycle::list(format == Format::Json),
        Command::Stop {
            name,
            timeout,
            force,
        } => envc::lifecycle::stop(&name, timeout, force),
        Command::Reboot { name } => envc::lifecycle::reboot(&name),
        Command::Console { name } => envc::lifecycle::console(&name),
        Command::Gc => envc::lifecycle::gc(),
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

/// `check` and `plan` end right after their work: what they made is left
/// for the exit to free. Taking apart a 10,000-device profile and its plan
/// one allocation at a time cost more than a tenth of such a command.
fn one_shot_done<T>(done: T) {
    std::mem::forget(done);
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// From this many steps on, `envc plan` checks the plan and writes its text
/// on two threads at once (each is about a seventh of the command at
/// 10,000 devices; below this, a thread costs more than it saves).
const PARALLEL_STEPS: usize = 4096;

/// The plan of the profile at `path`, checked, and its text in `format`.
fn compile_profile(path: &Path, format: Format) -> Result<(Plan, String), ExitCode> {
    match envc::profile::load(path) {
        Ok((mut profile, sources)) => {
            envc::timing::mark("profile loaded and checked");
            let plan = envc::compile::compile_moving_raw_keys(&mut profile);
            envc::timing::mark("plan compiled");
            one_shot_done((profile, sources));
            let (checked, text) = if plan.steps.len() >= PARALLEL_STEPS {
                let (text, checked) =
                    envc::alloc::side_by_side(|| plan_text(&plan, format), || plan.check());
                (checked, text)
            } else {
                (plan.check(), plan_text(&plan, format))
            };
            if let Err(e) = checked {
                eprintln!("envc: internal error: the compiled plan is inconsistent: {e}");
                return Err(ExitCode::from(125));
            }
            envc::timing::mark("plan checked and its text made");
            Ok((plan, text))
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

fn plan_text(plan: &Plan, format: Format) -> String {
    match format {
        Format::Text => plan.to_text(),
        Format::Json => plan.to_json(),
    }
}

fn emit_plan(plan: &Plan, format: Format, output: Option<&Path>) -> ExitCode {
    write_plan(plan_text(plan, format), output)
}

fn write_plan(text: String, output: Option<&Path>) -> ExitCode {
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
