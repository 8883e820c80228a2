//! Deployment tasks: what happens after a certificate is issued (or fails to be).
//!
//! A task is written on the command line as a SPEC:
//!
//! ```text
//! files:dir=DIR[,cert=cert.pem][,chain=chain.pem][,fullchain=fullchain.pem][,key=privkey.pem]
//!       [,owner=USER][,group=GROUP][,mode=0644][,key-mode=0600][,force=true]
//! pkcs12:file=PATH,password=PASSWORD[,legacy=true][,owner=USER][,group=GROUP][,mode=0600]
//!       [,force=true]
//! command:SHELL COMMAND
//! webhook:url=URL,secret=SECRET
//! sftp:host=HOST[:PORT],user=USER,credential=NAME,dir=DIR,known-hosts=PATH|fingerprint=SHA256:…
//!      [,cert=…][,chain=…][,fullchain=…][,key=…][,mode=0644][,key-mode=0600][,force=true]
//! ssh:host=HOST[:PORT],user=USER,credential=NAME,known-hosts=PATH|fingerprint=SHA256:…,command=…
//! nginx:server=NAME[,config=/etc/nginx/nginx.conf][,dir=DIR][,test=CMD][,reload=CMD]
//! apache:vhost=NAME[,config=/etc/apache2/apache2.conf][,dir=DIR][,test=CMD][,reload=CMD]
//! ```
//!
//! `sftp` and `ssh` reach another machine with the private key of a stored credential (kind
//! `ssh`), and only if its host key is the one pinned (in an OpenSSH `known_hosts` file, or
//! by its SHA-256 fingerprint as `ssh-keygen -lf` prints it). `command=` comes last and runs
//! as written by the remote user's shell. `nginx` and `apache` write the full chain and the
//! key (in `dir`, by default `/etc/ssl/certhub/CERT`), point the TLS server block (virtual
//! host) answering to NAME at them, test the configuration and reload, and put the previous
//! configuration back if the test or the reload fails.
//!
//! each optionally followed by `;trigger=on-success|on-failure|always` (default on-success),
//! `;timeout=SECONDS` (default 60) and `;name=NAME` (default KIND-N). For `files`, an empty
//! file name (`key=`) leaves that file out. A file holding the private key (`key-mode`, and
//! the PKCS#12 file's `mode`) may be read by its owner and a group, never by others nor
//! written by the group, unless `force=true`. A certificate's tasks run in order.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::challenge::{parse_options, redact};
use crate::secret::Secret;

/// How long a task may run unless its SPEC says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// When a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// After every request, issued or failed.
    Always,
    /// After a request or an earlier task failed.
    OnFailure,
    /// After a certificate was issued (and every earlier task succeeded).
    OnSuccess,
}

impl Trigger {
    /// Does a task with this trigger run after a request that `succeeded`?
    pub fn fires(self, succeeded: bool) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => !succeeded,
            Self::OnSuccess => succeeded,
        }
    }

    /// The name used in SPECs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OnFailure => "on-failure",
            Self::OnSuccess => "on-success",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// PEM files written into one directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PemFiles {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// File name of the leaf certificate, or `None` to leave it out.
    pub cert: Option<String>,
    /// File name of the intermediates.
    pub chain: Option<String>,
    /// File name of the leaf followed by the intermediates.
    pub fullchain: Option<String>,
    /// File name of the private key (PKCS#8).
    pub key: Option<String>,
    /// Owner (a user name or uid).
    pub owner: Option<String>,
    /// Group (a group name or gid).
    pub group: Option<String>,
    /// Mode of the certificate files.
    pub mode: u32,
    /// Mode of the key file.
    pub key_mode: u32,
}

impl PemFiles {
    /// The files this task writes, with their roles and modes.
    pub fn files(&self) -> Vec<(PemRole, PathBuf, u32)> {
        [
            (PemRole::Cert, &self.cert, self.mode),
            (PemRole::Chain, &self.chain, self.mode),
            (PemRole::Fullchain, &self.fullchain, self.mode),
            (PemRole::Key, &self.key, self.key_mode),
        ]
        .into_iter()
        .filter_map(|(role, name, mode)| name.as_ref().map(|n| (role, self.dir.join(n), mode)))
        .collect()
    }
}

impl PemFiles {
    /// The files' names with their modes: `fullchain.pem (0644), privkey.pem (0600)`.
    pub fn listed(&self) -> String {
        let names: Vec<String> = self
            .files()
            .iter()
            .map(|(_, p, mode)| {
                let name = p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
                format!("{name} ({mode:04o})")
            })
            .collect();
        names.join(", ")
    }
}

/// What a PEM file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemRole {
    /// The leaf certificate.
    Cert,
    /// The intermediates.
    Chain,
    /// The leaf and the intermediates.
    Fullchain,
    /// The private key.
    Key,
}

/// A PKCS#12 file holding the key and the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pkcs12File {
    /// Where to write it.
    pub file: PathBuf,
    /// The password protecting it.
    pub password: Secret,
    /// 3DES with a SHA-1 MAC (old Windows and Java) instead of AES-256 with SHA-256.
    pub legacy: bool,
    /// Owner (a user name or uid).
    pub owner: Option<String>,
    /// Group (a group name or gid).
    pub group: Option<String>,
    /// Mode of the file.
    pub mode: u32,
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DeployAction {
    /// Runs a shell command with the certificate's facts in its environment.
    Command {
        /// The command line, run by `/bin/sh -c`.
        run: String,
    },
    /// Writes PEM files.
    Files(PemFiles),
    /// Writes a PKCS#12 file.
    Pkcs12(Pkcs12File),
    /// POSTs a signed JSON event.
    Webhook {
        /// Where the event goes.
        url: String,
        /// HMAC-SHA256 key for the signature header.
        secret: Secret,
    },
    /// Writes PEM files on another machine over SFTP (`files.dir` is the remote directory;
    /// owner and group are not set).
    Sftp {
        /// The machine and how to sign in.
        target: SshTarget,
        /// The files, as for `files`.
        files: PemFiles,
    },
    /// Runs a command on another machine over SSH.
    Ssh {
        /// The machine and how to sign in.
        target: SshTarget,
        /// The command, run by the remote user's shell.
        command: String,
    },
    /// Points an nginx `server` block at the certificate.
    Nginx(WebServerSite),
    /// Points an Apache `<VirtualHost>` at the certificate.
    Apache(WebServerSite),
}

/// A machine reached over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshTarget {
    /// Its name or address.
    pub host: String,
    /// Its SSH port.
    pub port: u16,
    /// The user to sign in as.
    pub user: String,
    /// The stored credential (kind `ssh`) holding the private key.
    pub credential: String,
    /// How its host key is known.
    pub host_key: HostKey,
    /// The credential's fields, filled in from it at each run.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub secrets: std::collections::BTreeMap<String, Secret>,
}

impl SshTarget {
    /// `user@host:port`.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// How an SSH server's host key is known: nothing else is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKey {
    /// Listed for the host in this OpenSSH `known_hosts` file.
    KnownHosts(PathBuf),
    /// This SHA-256 fingerprint, `SHA256:` and unpadded base64, as `ssh-keygen -lf` prints.
    Fingerprint(String),
}

/// A site of a web server on this machine that a task points at the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebServerSite {
    /// A name the server block (virtual host) answers to.
    pub site: String,
    /// The server's main configuration file; its usual place when not given.
    pub config: Option<PathBuf>,
    /// Where the full chain and the key are written; `/etc/ssl/certhub/CERT` when not given.
    pub dir: Option<PathBuf>,
    /// The configuration test; `nginx -t -c CONFIG` or `apachectl configtest` when not given.
    pub test: Option<String>,
    /// The reload; `nginx -s reload -c CONFIG` or `apachectl graceful` when not given.
    pub reload: Option<String>,
}

impl DeployAction {
    /// The kind as written in SPECs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Command { .. } => "command",
            Self::Files(_) => "files",
            Self::Pkcs12(_) => "pkcs12",
            Self::Webhook { .. } => "webhook",
            Self::Sftp { .. } => "sftp",
            Self::Ssh { .. } => "ssh",
            Self::Nginx(_) => "nginx",
            Self::Apache(_) => "apache",
        }
    }

    /// The stored credential this task signs in with, if any.
    pub fn credential(&self) -> Option<&str> {
        match self {
            Self::Sftp { target, .. } | Self::Ssh { target, .. } => Some(&target.credential),
            _ => None,
        }
    }

    /// This task with the fields of its credential, `values` of kind `kind`, filled in; or
    /// why that credential does not fit it.
    pub fn with_credential(
        &self,
        kind: &str,
        values: &std::collections::BTreeMap<String, Secret>,
    ) -> Result<DeployAction, String> {
        let mut out = self.clone();
        if let Self::Sftp { target, .. } | Self::Ssh { target, .. } = &mut out {
            if kind != "ssh" {
                return Err(format!(
                    "credential {} is a {kind} credential, and {}: takes an ssh one",
                    target.credential,
                    self.kind()
                ));
            }
            target.secrets = values.clone();
        }
        Ok(out)
    }

    /// What the task does, in plain language and without secrets.
    pub fn describe(&self) -> String {
        let owned = |owner: &Option<String>, group: &Option<String>| match (owner, group) {
            (None, None) => String::new(),
            (o, g) => format!(
                " owned by {}:{}",
                o.as_deref().unwrap_or("(unchanged)"),
                g.as_deref().unwrap_or("(unchanged)")
            ),
        };
        match self {
            Self::Command { run } => format!("run `{run}`"),
            Self::Files(f) => {
                format!("write {} to {}{}", f.listed(), f.dir.display(), owned(&f.owner, &f.group))
            }
            Self::Pkcs12(p) => format!(
                "write a password-protected PKCS#12 file {} ({:04o}, {}){}",
                p.file.display(),
                p.mode,
                if p.legacy { "legacy 3DES/SHA-1" } else { "AES-256/SHA-256" },
                owned(&p.owner, &p.group)
            ),
            Self::Webhook { url, .. } => format!("POST a signed JSON event to {url}"),
            Self::Sftp { target, files } => format!(
                "copy {} to {} on {} over SFTP (credential {})",
                files.listed(),
                files.dir.display(),
                target.address(),
                target.credential
            ),
            Self::Ssh { target, .. } => format!(
                "run a command on {} over SSH (credential {})",
                target.address(),
                target.credential
            ),
            Self::Nginx(site) | Self::Apache(site) => format!(
                "point the {} {} answering to {} at the certificate, test the configuration \
                 and reload",
                self.kind(),
                if matches!(self, Self::Nginx(_)) { "server block" } else { "virtual host" },
                site.site
            ),
        }
    }
}

/// One deployment task of a managed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployTask {
    /// Unique among the certificate's tasks.
    pub name: String,
    /// What it does.
    pub action: DeployAction,
    /// When it runs.
    pub trigger: Trigger,
    /// How long it may take.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Endpoints (`HOST:PORT`) an agent checks after deploying: which serial each serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<String>,
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// A deployment SPEC that could not be parsed; the message names the part and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deployment spec {spec:?}: {reason}")]
pub struct DeploySpecError {
    /// The SPEC as given, with secrets replaced by `***`.
    pub spec: String,
    /// What is wrong.
    pub reason: String,
}

/// Options that may follow the action after `;`.
const TASK_OPTIONS: [&str; 4] = ["name", "timeout", "trigger", "verify"];

impl DeployTask {
    /// Parses a SPEC as documented on this module; `default_name` is used without `;name=`.
    pub fn parse(spec: &str, default_name: &str) -> Result<Self, DeploySpecError> {
        let err = |reason: String| DeploySpecError { spec: redact(spec), reason };
        // Task options are taken from the end, so a command may itself contain `;`.
        let mut head = spec.trim();
        let mut tail = Vec::new();
        while let Some((rest, last)) = head.rsplit_once(';') {
            match last.split_once('=') {
                Some((k, v)) if TASK_OPTIONS.contains(&k.trim()) => {
                    tail.push((k.trim().to_string(), v.trim().to_string()));
                    head = rest.trim_end();
                }
                _ if last.trim().is_empty() => head = rest.trim_end(),
                _ => break,
            }
        }
        let (kind, rest) = head
            .split_once(':')
            .ok_or_else(|| err("expected KIND:OPTIONS, e.g. files:dir=/etc/ssl/web".into()))?;
        let action = match kind.trim() {
            "command" => {
                let run = rest.trim();
                if run.is_empty() {
                    return Err(err("command: needs the command to run".into()));
                }
                DeployAction::Command { run: run.to_string() }
            }
            "ssh" => {
                // command= comes last and is taken as written, commas and all.
                let Some((options, command)) = rest.split_once("command=") else {
                    return Err(err("ssh: needs command=… (last)".into()));
                };
                let options =
                    parse_options(options.trim_end().trim_end_matches(',')).map_err(&err)?;
                let command = command.trim();
                if command.is_empty() {
                    return Err(err("ssh: needs the command to run after command=".into()));
                }
                let target = ssh_target("ssh", &options, &[]).map_err(&err)?;
                DeployAction::Ssh { target, command: command.to_string() }
            }
            "files" | "pkcs12" | "webhook" | "sftp" | "nginx" | "apache" => {
                let options = parse_options(rest).map_err(&err)?;
                parse_action(kind.trim(), &options).map_err(&err)?
            }
            other => {
                return Err(err(format!(
                    "unknown task kind {other:?}; expected files, pkcs12, command, webhook, \
                     sftp, ssh, nginx or apache"
                )));
            }
        };
        let mut task = DeployTask {
            name: default_name.to_string(),
            action,
            trigger: Trigger::OnSuccess,
            timeout: DEFAULT_TIMEOUT,
            verify: Vec::new(),
        };
        // Taken from the end: put back in the order written.
        for (k, v) in tail.into_iter().rev() {
            match k.as_str() {
                "name" => {
                    if v.is_empty()
                        || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    {
                        return Err(err(format!(
                            "name={v:?}: use letters, digits, '-', '_' and '.' only"
                        )));
                    }
                    task.name = v;
                }
                "verify" => {
                    let port = v.rsplit_once(':').and_then(|(h, p)| {
                        (!h.is_empty())
                            .then_some(p.parse::<u16>().ok().filter(|p| *p > 0))
                            .flatten()
                    });
                    if port.is_none() {
                        return Err(err(format!(
                            "verify={v:?}: name the endpoint as HOST:PORT, e.g. verify=127.0.0.1:443"
                        )));
                    }
                    task.verify.push(v);
                }
                "timeout" => {
                    let secs: u64 = v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        err(format!("timeout={v} is not a positive whole number of seconds"))
                    })?;
                    task.timeout = Duration::from_secs(secs);
                }
                _ => {
                    task.trigger = match v.as_str() {
                        "on-success" => Trigger::OnSuccess,
                        "on-failure" => Trigger::OnFailure,
                        "always" => Trigger::Always,
                        other => {
                            return Err(err(format!(
                                "trigger={other} is not one of on-success, on-failure, always"
                            )));
                        }
                    }
                }
            }
        }
        Ok(task)
    }
}

/// The mode bits a private key's file must not have: any for others, group write, and the
/// set-id and sticky bits.
const KEY_MODE_TOO_WIDE: u32 = 0o7027;

/// The options naming an SSH target.
const SSH_OPTIONS: [&str; 5] = ["host", "user", "credential", "known-hosts", "fingerprint"];

/// The SSH target of a `kind` task from its options; `others` are the kind's other options.
fn ssh_target(
    kind: &str,
    options: &[(String, String)],
    others: &[&str],
) -> Result<SshTarget, String> {
    if let Some((k, _)) = options
        .iter()
        .find(|(k, _)| !SSH_OPTIONS.contains(&k.as_str()) && !others.contains(&k.as_str()))
    {
        let mut takes: Vec<&str> = SSH_OPTIONS.to_vec();
        takes.extend_from_slice(others);
        if kind == "ssh" {
            takes.push("command (last)");
        }
        return Err(format!("{kind} has no option {k:?}; it takes {}", takes.join(", ")));
    }
    let get = |key: &str| {
        options.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    };
    let need = |key: &str| get(key).ok_or(format!("{kind} needs {key}=…"));
    let host = need("host")?;
    let (host, port) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (h, 22),
            Some((h, p)) => (h, p.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(0)),
            None => (host, 0),
        },
        None => match host.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().unwrap_or(0)),
            Some(_) => (host, 22),
            None => (host, 22),
        },
    };
    if port == 0 || host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!(
            "host={} is not HOST or HOST:PORT (an IPv6 address in brackets: [2001:db8::1]:22)",
            need("host")?
        ));
    }
    let user = need("user")?;
    let credential = need("credential").map_err(|_| {
        format!(
            "{kind} needs credential=NAME, a stored private key: \
             `certhub credential add NAME --kind ssh --from-file private-key=PATH`"
        )
    })?;
    crate::credential::check_name(credential)?;
    let host_key = match (get("known-hosts"), get("fingerprint")) {
        (Some(path), None) => HostKey::KnownHosts(PathBuf::from(path)),
        (None, Some(f)) => {
            let b64 = f.strip_prefix("SHA256:").unwrap_or_default();
            if b64.len() != 43
                || !b64.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
            {
                return Err(format!(
                    "fingerprint={f} is not a SHA-256 fingerprint as `ssh-keygen -lf` prints it \
                     (SHA256: and 43 characters of base64)"
                ));
            }
            HostKey::Fingerprint(f.to_string())
        }
        (Some(_), Some(_)) => return Err("give known-hosts= or fingerprint=, not both".into()),
        (None, None) => {
            return Err(format!(
                "{kind} needs the host's key pinned: known-hosts=PATH (an OpenSSH known_hosts \
                 file listing it) or fingerprint=SHA256:… (`ssh-keygen -lf` of its key)"
            ));
        }
    };
    Ok(SshTarget {
        host: host.to_ascii_lowercase(),
        port,
        user: user.to_string(),
        credential: credential.to_string(),
        host_key,
        secrets: Default::default(),
    })
}

fn parse_action(kind: &str, options: &[(String, String)]) -> Result<DeployAction, String> {
    if kind == "sftp" {
        let (target, files): (Vec<_>, Vec<_>) =
            options.iter().cloned().partition(|(k, _)| SSH_OPTIONS.contains(&k.as_str()));
        let files_options =
            ["dir", "cert", "chain", "fullchain", "key", "mode", "key-mode", "force"];
        let target = ssh_target("sftp", &target, &files_options)?;
        if let Some((k, _)) = files.iter().find(|(k, _)| !files_options.contains(&k.as_str())) {
            return Err(format!(
                "sftp has no option {k:?}; it takes {}, {}",
                SSH_OPTIONS.join(", "),
                files_options.join(", ")
            ));
        }
        let DeployAction::Files(files) = parse_action("files", &files)? else { unreachable!() };
        return Ok(DeployAction::Sftp { target, files });
    }
    if kind == "nginx" || kind == "apache" {
        let site_key = if kind == "nginx" { "server" } else { "vhost" };
        let allowed = [site_key, "config", "dir", "test", "reload"];
        if let Some((k, _)) = options.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            return Err(format!("{kind} has no option {k:?}; it takes {}", allowed.join(", ")));
        }
        let get = |key: &str| {
            options.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
        };
        let site = get(site_key).ok_or(format!(
            "{kind} needs {site_key}=NAME, a name the {} answers to",
            if kind == "nginx" { "server block" } else { "virtual host" }
        ))?;
        let site = WebServerSite {
            site: site.to_ascii_lowercase(),
            config: get("config").map(PathBuf::from),
            dir: get("dir").map(PathBuf::from),
            test: get("test").map(str::to_string),
            reload: get("reload").map(str::to_string),
        };
        return Ok(if kind == "nginx" {
            DeployAction::Nginx(site)
        } else {
            DeployAction::Apache(site)
        });
    }
    let allowed: &[&str] = match kind {
        "files" => &[
            "dir",
            "cert",
            "chain",
            "fullchain",
            "key",
            "owner",
            "group",
            "mode",
            "key-mode",
            "force",
        ],
        "pkcs12" => &["file", "password", "legacy", "owner", "group", "mode", "force"],
        _ => &["url", "secret"],
    };
    if let Some((k, _)) = options.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(format!("{kind} has no option {k:?}; it takes {}", allowed.join(", ")));
    }
    let get = |key: &str| options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let need =
        |key: &str| get(key).filter(|v| !v.is_empty()).ok_or(format!("{kind} needs {key}=…"));
    // A file name: the default when absent, none when given empty, no directories.
    let file_name = |key: &str, default: &str| -> Result<Option<String>, String> {
        match get(key) {
            None => Ok(Some(default.to_string())),
            Some("") => Ok(None),
            Some(v) if v.contains('/') || v == "." || v == ".." => {
                Err(format!("{key}={v} must be a file name inside dir, not a path"))
            }
            Some(v) => Ok(Some(v.to_string())),
        }
    };
    let mode = |key: &str, default: u32| -> Result<u32, String> {
        match get(key) {
            None => Ok(default),
            Some(v) => u32::from_str_radix(v.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or(format!("{key}={v} is not an octal file mode like 0640")),
        }
    };
    let text = |key: &str| get(key).filter(|v| !v.is_empty()).map(str::to_string);
    let force = match get("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(format!("force={v} is not true or false")),
    };
    // A file holding a private key: its owner reads it, a group may (ssl-cert, say), and no
    // one else, unless the task says force=true.
    let key_mode = |key: &str, default: u32| -> Result<u32, String> {
        let m = mode(key, default)?;
        if m & KEY_MODE_TOO_WIDE != 0 && !force {
            return Err(format!(
                "{key}={v:04o} lets other users read or change the private key; use 0600, or \
                 0640 with group=, or add force=true to deploy it anyway",
                v = m
            ));
        }
        Ok(m)
    };
    Ok(match kind {
        "files" => {
            let files = PemFiles {
                dir: PathBuf::from(need("dir")?),
                cert: file_name("cert", "cert.pem")?,
                chain: file_name("chain", "chain.pem")?,
                fullchain: file_name("fullchain", "fullchain.pem")?,
                key: file_name("key", "privkey.pem")?,
                owner: text("owner"),
                group: text("group"),
                mode: mode("mode", 0o644)?,
                key_mode: key_mode("key-mode", 0o600)?,
            };
            if files.files().is_empty() {
                return Err("every file is left out; keep at least one".into());
            }
            DeployAction::Files(files)
        }
        "pkcs12" => DeployAction::Pkcs12(Pkcs12File {
            file: PathBuf::from(need("file")?),
            password: Secret::new(need("password")?),
            legacy: match get("legacy") {
                None | Some("false") => false,
                Some("true") => true,
                Some(v) => return Err(format!("legacy={v} is not true or false")),
            },
            owner: text("owner"),
            group: text("group"),
            mode: key_mode("mode", 0o600)?,
        }),
        _ => {
            let url = need("url")?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("url={url} is not an http:// or https:// URL"));
            }
            DeployAction::Webhook { url: url.to_string(), secret: Secret::new(need("secret")?) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_readable_by_others_needs_force() {
        for spec in [
            "files:dir=/d,key-mode=0666",
            "files:dir=/d,key-mode=0604",
            "pkcs12:file=/k.p12,password=p,mode=0644",
        ] {
            let e = DeployTask::parse(spec, "t").unwrap_err().reason;
            assert!(e.contains("lets other users read or change the private key"), "{spec}: {e}");
            assert!(e.contains("force=true"), "{e}");
        }
        let e = DeployTask::parse("files:dir=/d,key-mode=0660", "t").unwrap_err().reason;
        assert!(e.contains("key-mode=0660"), "group write is refused too: {e}");
        let t = DeployTask::parse("files:dir=/d,key-mode=0644,force=true", "t").unwrap();
        let DeployAction::Files(f) = &t.action else { panic!("{t:?}") };
        assert_eq!(f.key_mode, 0o644);
        // The certificates themselves are public: mode= stays as it was.
        assert!(DeployTask::parse("files:dir=/d,mode=0644,key-mode=0640", "t").is_ok());
        let e = DeployTask::parse("files:dir=/d,force=maybe", "t").unwrap_err().reason;
        assert!(e.contains("force=maybe"), "{e}");
    }

    #[test]
    fn remote_and_web_server_tasks_name_every_missing_or_wrong_field() {
        let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        let t = DeployTask::parse(
            &format!("ssh:host=[2001:db8::1]:2222,user=deploy,credential=box,fingerprint={fp},command=a, b; c"),
            "t",
        )
        .unwrap();
        let DeployAction::Ssh { target, command } = &t.action else { panic!("{t:?}") };
        assert_eq!(
            (target.host.as_str(), target.port, command.as_str()),
            ("2001:db8::1", 2222, "a, b; c")
        );
        assert_eq!(target.address(), "deploy@[2001:db8::1]:2222");
        let t =
            DeployTask::parse("sftp:host=h,user=u,credential=box,known-hosts=/k,dir=/d,key=", "t")
                .unwrap();
        let DeployAction::Sftp { target, files } = &t.action else { panic!("{t:?}") };
        assert_eq!((target.port, files.files().len()), (22, 3));
        assert_eq!(t.action.credential(), Some("box"));
        let t = DeployTask::parse("nginx:server=WEB.example.com,config=/n.conf", "t").unwrap();
        let DeployAction::Nginx(site) = &t.action else { panic!("{t:?}") };
        assert_eq!((site.site.as_str(), site.dir.as_ref()), ("web.example.com", None));
        for (spec, why) in [
            ("sftp:host=h,user=u,dir=/d,known-hosts=/k", "needs credential=NAME"),
            ("sftp:host=h,user=u,credential=c,dir=/d", "needs the host's key pinned"),
            (
                "sftp:host=h,user=u,credential=c,dir=/d,known-hosts=/k,fingerprint=SHA256:x",
                "not both",
            ),
            (
                "sftp:host=h,user=u,credential=c,dir=/d,fingerprint=MD5:aa",
                "not a SHA-256 fingerprint",
            ),
            ("sftp:host=h:0,user=u,credential=c,dir=/d,known-hosts=/k", "host=h:0 is not HOST"),
            (
                "sftp:host=h,user=u,credential=c,dir=/d,known-hosts=/k,owner=www",
                "no option \"owner\"",
            ),
            ("sftp:host=h,credential=c,dir=/d,known-hosts=/k", "needs user="),
            ("ssh:host=h,user=u,credential=c,known-hosts=/k", "needs command="),
            ("ssh:host=h,user=u,credential=c,known-hosts=/k,command= ", "needs the command"),
            ("nginx:config=/n.conf", "needs server=NAME"),
            ("apache:server=x", "apache has no option \"server\""),
        ] {
            let e = DeployTask::parse(spec, "t").unwrap_err().reason;
            assert!(e.contains(why), "{spec}: {e}");
        }
        let ssh = DeployTask::parse("ssh:host=h,user=u,credential=c,known-hosts=/k,command=x", "t");
        let e = ssh.unwrap().action.with_credential("tsig", &Default::default()).unwrap_err();
        assert!(e.contains("c is a tsig credential, and ssh: takes an ssh one"), "{e}");
    }

    #[test]
    fn files_with_defaults_and_options() {
        let t = DeployTask::parse("files:dir=/etc/ssl/web", "files-1").unwrap();
        assert_eq!(t.name, "files-1");
        assert_eq!(t.trigger, Trigger::OnSuccess);
        assert_eq!(t.timeout, DEFAULT_TIMEOUT);
        let DeployAction::Files(f) = &t.action else { panic!("{t:?}") };
        let names: Vec<_> = f.files().into_iter().map(|(_, p, m)| (p, m)).collect();
        assert_eq!(
            names,
            vec![
                ("/etc/ssl/web/cert.pem".into(), 0o644),
                ("/etc/ssl/web/chain.pem".into(), 0o644),
                ("/etc/ssl/web/fullchain.pem".into(), 0o644),
                ("/etc/ssl/web/privkey.pem".into(), 0o600),
            ]
        );
        let t = DeployTask::parse(
            "files:dir=/d,cert=,chain=,key=site.key,owner=www-data,group=ssl-cert,mode=0640,key-mode=0640;timeout=5;name=web",
            "x",
        )
        .unwrap();
        assert_eq!((t.name.as_str(), t.timeout), ("web", Duration::from_secs(5)));
        let DeployAction::Files(f) = &t.action else { panic!("{t:?}") };
        assert_eq!(f.files().len(), 2);
        assert_eq!((f.mode, f.key_mode), (0o640, 0o640));
        assert_eq!(f.owner.as_deref(), Some("www-data"));
        assert!(
            t.action
                .describe()
                .contains("fullchain.pem (0640), site.key (0640) to /d owned by www-data:ssl-cert"),
            "{}",
            t.action.describe()
        );
    }

    #[test]
    fn a_command_may_contain_semicolons_and_keeps_trailing_options() {
        let t = DeployTask::parse(
            "command:nginx -t; systemctl reload nginx;trigger=always;timeout=30",
            "command-1",
        )
        .unwrap();
        assert_eq!(
            t.action,
            DeployAction::Command { run: "nginx -t; systemctl reload nginx".into() }
        );
        assert_eq!((t.trigger, t.timeout), (Trigger::Always, Duration::from_secs(30)));
    }

    #[test]
    fn triggers_fire_as_named() {
        assert!(Trigger::OnSuccess.fires(true) && !Trigger::OnSuccess.fires(false));
        assert!(!Trigger::OnFailure.fires(true) && Trigger::OnFailure.fires(false));
        assert!(Trigger::Always.fires(true) && Trigger::Always.fires(false));
    }

    #[test]
    fn secrets_are_kept_out_of_errors_and_descriptions() {
        let t = DeployTask::parse("webhook:url=https://h/x,secret=s3cr3t", "w").unwrap();
        assert!(!format!("{t:?}{}", t.action.describe()).contains("s3cr3t"));
        let e =
            DeployTask::parse("pkcs12:file=/x.p12,password=hunter2,legacy=maybe", "p").unwrap_err();
        assert!(
            e.to_string().contains("legacy=maybe") && !e.to_string().contains("hunter2"),
            "{e}"
        );
        // The secret as the first option, right after the kind.
        let e = DeployTask::parse("webhook:secret=s3cr3t,url=ftp://x", "w").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t") && e.to_string().contains("url="), "{e}");
    }

    #[test]
    fn bad_specs_name_the_rule() {
        for (spec, want) in [
            ("files:cert=a.pem", "files needs dir="),
            ("files:dir=/d,key=../k", "must be a file name"),
            ("files:dir=/d,mode=rw", "octal file mode"),
            ("files:dir=/d,cert=,chain=,fullchain=,key=", "keep at least one"),
            ("files:dir=/d,colour=red", "no option \"colour\""),
            ("pkcs12:file=/x.p12", "pkcs12 needs password="),
            ("webhook:url=ftp://x,secret=s", "not an http"),
            ("command:", "needs the command"),
            ("command:true;trigger=sometimes", "trigger=sometimes"),
            ("command:true;timeout=0", "timeout=0"),
            ("command:true;name=a b", "letters, digits"),
            ("scp:host=x", "unknown task kind"),
            ("nothing", "expected KIND:OPTIONS"),
        ] {
            let e = DeployTask::parse(spec, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }

    #[test]
    fn endpoints_to_verify_are_host_and_port_in_the_order_written() {
        let t =
            DeployTask::parse("files:dir=/x;verify=127.0.0.1:443;verify=[::1]:8443", "f").unwrap();
        assert_eq!(t.verify, ["127.0.0.1:443", "[::1]:8443"]);
        for bad in ["files:dir=/x;verify=443", "files:dir=/x;verify=web:https"] {
            let err = DeployTask::parse(bad, "f").unwrap_err();
            assert!(err.reason.contains("HOST:PORT"), "{err}");
        }
    }
}
