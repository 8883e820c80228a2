//! Running a command: `/bin/sh -c RUN` in its own process group, which is killed whole when
//! the task's timeout ends it. Where util-linux's `setpriv` is installed, the shell is
//! started through it with `--pdeathsig KILL`: if certhub itself is killed mid-deployment,
//! the kernel ends the shell too, so a command never finishes a deployment that certhub
//! did not see finish (the next run deploys again, once).

use std::process::Stdio;
use std::time::Duration;

use crate::Error;

/// How much of the command's output goes into an error.
const OUTPUT_TAIL: usize = 600;

pub(crate) async fn run(
    run: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<String, Error> {
    let mut cmd = match setpriv() {
        Some(setpriv) => {
            let mut c = tokio::process::Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--", "/bin/sh"]);
            c
        }
        None => tokio::process::Command::new("/bin/sh"),
    };
    // certhub's own settings (the master key, the database URL with its password, import
    // passwords) are not the command's business; it gets the facts below instead.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CERTHUB_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("-c")
        .arg(run)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|source| Error::Io { what: "cannot start /bin/sh".to_string(), source })?;
    // Whether the timeout ends the wait or the caller drops this future, the whole group
    // goes; only a command that ends by itself may leave processes behind (a daemon it
    // started, say).
    let mut group = Group(child.id());
    let waited = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let output = match waited {
        Ok(r) => {
            group.0 = None;
            r.map_err(|source| Error::Io { what: "the command failed".to_string(), source })?
        }
        Err(_) => return Err(Error::Timeout(timeout)),
    };
    if output.status.success() {
        return Ok("the command succeeded".to_string());
    }
    let status = match output.status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_string(),
    };
    let mut text = String::from_utf8_lossy(&output.stderr).to_string();
    if text.trim().is_empty() {
        text = String::from_utf8_lossy(&output.stdout).to_string();
    }
    Err(Error::CommandFailed { status, output: tail(&text) })
}

/// The end of what a command printed, trimmed, at most `OUTPUT_TAIL` bytes.
pub(crate) fn tail(text: &str) -> String {
    let text = text.trim();
    if text.len() <= OUTPUT_TAIL {
        return text.to_string();
    }
    let cut = text.len() - OUTPUT_TAIL;
    let start = (cut..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    format!("…{}", &text[start..])
}

/// util-linux's `setpriv`, if installed.
fn setpriv() -> Option<&'static std::path::Path> {
    static FOUND: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            ["/usr/bin/setpriv", "/bin/setpriv"]
                .iter()
                .map(std::path::PathBuf::from)
                .find(|p| p.is_file())
        })
        .as_deref()
}

/// A process group that is killed whole when this is dropped, so a shell's children do not
/// outlive the timeout.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}
