//! A child process for tests: its stdout and stderr collected by threads,
//! waited for with a timeout, and killed and reaped on drop.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a process ended (a `None` status: killed after its timeout).
pub struct Out {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    pub fn describe(&self) -> String {
        format!(
            "--- exit: {:?} after {:?}\n--- stderr:\n{}\n--- stdout (tail):\n{}",
            self.status,
            self.elapsed,
            super::tail(&self.stderr, 6000),
            super::tail(&self.stdout, 4000)
        )
    }
    /// Asserts exit code `code`.
    pub fn expect(&self, code: i32, what: &str) -> &Out {
        assert_eq!(self.code(), Some(code), "{what}\n{}", self.describe());
        self
    }
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// A running command whose stdout/stderr are collected by threads; killed (SIGKILL)
/// and reaped on drop.
pub struct Proc {
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Proc {
    pub fn try_spawn(cmd: Command) -> std::io::Result<Proc> {
        Proc::try_spawn_feeding(cmd, None)
    }

    /// Starts `cmd` with `input` on its stdin (then end of file), written by a thread.
    pub fn spawn_feeding(cmd: Command, input: &[u8]) -> Proc {
        let desc = format!("{cmd:?}");
        Proc::try_spawn_feeding(cmd, Some(input.to_vec()))
            .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"))
    }

    fn try_spawn_feeding(mut cmd: Command, input: Option<Vec<u8>>) -> std::io::Result<Proc> {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&data);
            });
        }
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Ok(Proc {
            child: Some(child),
            stdout,
            stderr,
            readers,
            started,
        })
    }

    pub fn spawn(cmd: Command) -> Proc {
        let desc = format!("{cmd:?}");
        Proc::try_spawn(cmd).unwrap_or_else(|e| panic!("cannot start {desc}: {e}"))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn stdout_now(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child, not reaped yet (we hold it).
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Waits until stdout holds `needle` `count` times; panics (output shown) when the
    /// process exits first or `timeout` passes.
    pub fn wait_stdout(&mut self, needle: &str, count: usize, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.stdout_now().matches(needle).count() >= count {
                return;
            }
            if self.exited() || start.elapsed() > timeout {
                let gone = self.exited();
                let out = self.finish(Duration::from_secs(1));
                panic!(
                    "waiting for {count}× {needle:?} on stdout: {}\n{}",
                    if gone {
                        "the process exited"
                    } else {
                        "timed out"
                    },
                    out.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for the exit, else kills; never panics.
    pub fn finish(&mut self, timeout: Duration) -> Out {
        let mut status = None;
        if let Some(mut c) = self.child.take() {
            let start = Instant::now();
            status = loop {
                if let Ok(Some(st)) = c.try_wait() {
                    break Some(st);
                }
                if start.elapsed() > timeout {
                    let _ = c.kill();
                    let _ = c.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
        }
        let elapsed = self.started.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Out {
            status,
            stdout: String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned(),
            elapsed,
        }
    }

    /// Waits for the exit; panics (after killing it) when `timeout` passes.
    pub fn wait(mut self, timeout: Duration) -> Out {
        let out = self.finish(timeout);
        assert!(
            out.status.is_some(),
            "did not finish within {timeout:?}: killed\n{}",
            out.describe()
        );
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `cmd` to its end and returns its output; kills it and panics (output shown)
/// after `timeout`.
pub fn run_cmd(cmd: Command, timeout: Duration) -> std::process::Output {
    let out = Proc::spawn(cmd).finish(timeout);
    let Some(status) = out.status else {
        panic!(
            "did not finish within {timeout:?}: killed\n{}",
            out.describe()
        );
    };
    std::process::Output {
        status,
        stdout: out.stdout.into_bytes(),
        stderr: out.stderr.into_bytes(),
    }
}

/// [`run_cmd`] of `argv`.
pub fn run(argv: &[&str], timeout: Duration) -> std::process::Output {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    run_cmd(cmd, timeout)
}

/// An output for a failure message.
pub fn show(o: &std::process::Output) -> String {
    format!(
        "({})\n--- stdout:\n{}--- stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `argv`; it must succeed within `timeout`. Returns its stdout.
pub fn run_ok(argv: &[&str], timeout: Duration) -> String {
    let o = run(argv, timeout);
    assert!(o.status.success(), "{argv:?} failed {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}
