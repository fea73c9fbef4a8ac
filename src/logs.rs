//! `envc logs NAME [-f] [--syslog]`: the console log (or what the guest
//! sent to `/dev/log`) of a container, running or not; with `-f`, what is
//! written after, until the container stops.

use crate::lifecycle::is_running;
use crate::state::log_dir;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How often `-f` looks for more.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// `envc logs`.
pub fn logs(name: &str, follow: bool, syslog: bool) -> ExitCode {
    let file = if syslog { "syslog.log" } else { "console.log" };
    let path = log_dir().join(name).join(file);
    let opened = if crate::state::is_container_name(name) {
        File::open(&path)
    } else {
        Err(io::ErrorKind::NotFound.into())
    };
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let what = if syslog { "syslog" } else { "console log" };
            eprintln!(
                "envc: `{name}` has no {what} ({} does not exist)",
                path.display()
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("envc: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let mut out = io::stdout().lock();
    if copy_new(&mut f, &mut out).is_err() {
        return ExitCode::SUCCESS; // stdout closed: nothing more to do
    }
    if !follow {
        return ExitCode::SUCCESS;
    }
    // Until the container stops; then what it wrote last.
    loop {
        let running = is_running(name);
        if reopen_if_replaced(&mut f, &path).is_err() || copy_new(&mut f, &mut out).is_err() {
            return ExitCode::SUCCESS;
        }
        if !running {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

/// Copies what `f` holds past its offset to `out`.
fn copy_new(f: &mut File, out: &mut impl Write) -> io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => return out.flush(),
            n => out.write_all(&buf[..n])?,
        }
    }
}

/// A log removed and made again (a new log directory), or cut shorter than
/// what was read, is read again from its start.
fn reopen_if_replaced(f: &mut File, path: &Path) -> io::Result<()> {
    let held = f.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) if (now.dev(), now.ino()) != (held.dev(), held.ino()) => {
            *f = File::open(path)?;
        }
        Ok(now) if now.len() < f.stream_position()? => {
            f.seek(SeekFrom::Start(0))?;
        }
        _ => {}
    }
    Ok(())
}
