//! `sftp:` and `ssh:` tasks: another machine reached over SSH (russh), signed in with the
//! private key of a stored credential, and only if its host key is the one pinned.
//!
//! SFTP writes each file beside its final name first (with its mode from the start), then
//! renames it in, so the web server never reads half a file; SFTP's rename does not
//! replace, so the old file is renamed aside for the moment between.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use certhub_core::deploy::{HostKey, SshTarget};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, client};
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::AsyncWriteExt as _;

use crate::Error;

/// Checks the server's key against the pin, keeping why it was refused.
struct Pinned {
    target: SshTarget,
    refused: Arc<Mutex<Option<String>>>,
}

impl Pinned {
    fn judge(&self, key: &PublicKey) -> Result<(), String> {
        let t = &self.target;
        let seen = key.fingerprint(HashAlg::Sha256).to_string();
        match &t.host_key {
            HostKey::Fingerprint(pinned) if *pinned == seen => Ok(()),
            HostKey::Fingerprint(pinned) => Err(format!(
                "the host key of {}:{} is {seen}, not the pinned {pinned}: if the machine's key \
                 was changed on purpose, pin the new one (fingerprint=…); otherwise something \
                 else answers in its place",
                t.host, t.port
            )),
            HostKey::KnownHosts(path) => {
                if let Err(e) = std::fs::metadata(path) {
                    return Err(format!("cannot read known-hosts={}: {e}", path.display()));
                }
                match russh::keys::check_known_hosts_path(&t.host, t.port, key, path) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(format!(
                        "{}:{} is not in {} (its key is {seen}): check the key, then add it, \
                         e.g. `ssh-keyscan -p {} {} >> {}`",
                        t.host,
                        t.port,
                        path.display(),
                        t.port,
                        t.host,
                        path.display()
                    )),
                    Err(russh::keys::Error::KeyChanged { line }) => Err(format!(
                        "the host key of {}:{} changed: {} line {line} lists another key, and \
                         it now answers with {seen}; if the change is expected, replace that \
                         line",
                        t.host,
                        t.port,
                        path.display()
                    )),
                    Err(e) => Err(format!("cannot read known-hosts={}: {e}", path.display())),
                }
            }
        }
    }
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let judged = match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            russh::keys::PublicKeyOrCertificate::Certificate(_) => Err(format!(
                "{}:{} answers with a host certificate, and certhub pins host keys only",
                self.target.host, self.target.port
            )),
        };
        match judged {
            Ok(()) => Ok(true),
            Err(why) => {
                *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                Ok(false)
            }
        }
    }
}

fn remote(what: String) -> Error {
    Error::Remote(what)
}

/// The private key of the target's credential.
pub(crate) fn private_key(target: &SshTarget) -> Result<russh::keys::PrivateKey, Error> {
    let field = |f: &str| target.secrets.get(f).map(|s| s.expose().to_string());
    let pem = field("private-key")
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| remote(format!("credential {} holds no private-key", target.credential)))?;
    let passphrase = field("passphrase").filter(|p| !p.is_empty());
    russh::keys::decode_secret_key(pem.trim(), passphrase.as_deref()).map_err(|e| {
        remote(format!(
            "the private-key of credential {} cannot be read ({e}){}",
            target.credential,
            if passphrase.is_none() {
                "; if it has a passphrase, add it to the credential"
            } else {
                ""
            }
        ))
    })
}

/// A signed-in session with the target.
async fn connect(target: &SshTarget, timeout: Duration) -> Result<client::Handle<Pinned>, Error> {
    let key = private_key(target)?;
    let config =
        Arc::new(client::Config { inactivity_timeout: Some(timeout), ..client::Config::default() });
    let refused = Arc::new(Mutex::new(None));
    let handler = Pinned { target: target.clone(), refused: refused.clone() };
    let addr = (target.host.as_str(), target.port);
    let mut session = match client::connect(config, addr, handler).await {
        Ok(s) => s,
        Err(e) => {
            let why = refused.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(remote(match why {
                Some(why) => format!("refused to sign in to {}: {why}", target.address()),
                None => format!("cannot reach {}: {e}", target.address()),
            }));
        }
    };
    let hash = session.best_supported_rsa_hash().await.ok().flatten().flatten();
    let auth = session
        .authenticate_publickey(&target.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await
        .map_err(|e| remote(format!("cannot sign in to {}: {e}", target.address())))?;
    if !auth.success() {
        return Err(remote(format!(
            "{} did not accept the key of credential {}: is its public key in {}'s \
             authorized_keys?",
            target.address(),
            target.credential,
            target.user
        )));
    }
    Ok(session)
}

/// Runs `command` on the target; its output when it succeeds.
pub(crate) async fn run(
    target: &SshTarget,
    command: &str,
    timeout: Duration,
) -> Result<String, Error> {
    let session = connect(target, timeout).await?;
    let lost = |e: russh::Error| remote(format!("{}: {e}", target.address()));
    let mut channel = session.channel_open_session().await.map_err(lost)?;
    channel.exec(true, command).await.map_err(lost)?;
    let mut output = Vec::new();
    let mut status = None;
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => output.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, .. } => output.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            _ => {}
        }
    }
    let _ = session.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    let output = crate::command::tail(&String::from_utf8_lossy(&output));
    match status {
        Some(0) => Ok(format!("ran the command on {}", target.address())),
        Some(code) => Err(Error::CommandFailed {
            status: format!("on {} exited with status {code}", target.address()),
            output,
        }),
        None => Err(Error::CommandFailed {
            status: format!("on {} ended without an exit status", target.address()),
            output,
        }),
    }
}

/// One file to write: its remote path, contents and mode.
pub(crate) struct RemoteFile<'a> {
    pub path: String,
    pub data: &'a [u8],
    pub mode: u32,
}

/// Writes `files` into `dir` on the target (created if missing).
pub(crate) async fn upload(
    target: &SshTarget,
    dir: &str,
    files: &[RemoteFile<'_>],
    timeout: Duration,
) -> Result<(), Error> {
    let session = connect(target, timeout).await?;
    let address = target.address();
    let at = address.as_str();
    let lost = |e: russh::Error| remote(format!("{at}: {e}"));
    let channel = session.channel_open_session().await.map_err(lost)?;
    channel.request_subsystem(true, "sftp").await.map_err(lost)?;
    let sftp = SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| remote(format!("{at} has no SFTP service: {e}")))?;
    let failed = |what: String| {
        move |e: russh_sftp::client::error::Error| remote(format!("{what} on {at}: {e}"))
    };
    // The directory, each missing level made in turn.
    let mut path = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        path = format!("{path}/{part}");
        let path = if dir.starts_with('/') { path.clone() } else { path[1..].to_string() };
        if !sftp
            .try_exists(path.as_str())
            .await
            .map_err(failed(format!("cannot look at {path}")))?
        {
            sftp.create_dir(path.as_str())
                .await
                .map_err(failed(format!("cannot create {path}")))?;
        }
    }
    // Every file beside its place first; then each renamed in.
    for f in files {
        let tmp = format!("{}.certhub-new", f.path);
        let attrs = FileAttributes { permissions: Some(f.mode), ..FileAttributes::empty() };
        let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE;
        let mut file = sftp
            .open_with_flags_and_attributes(tmp.as_str(), flags, attrs.clone())
            .await
            .map_err(failed(format!("cannot write {tmp}")))?;
        file.write_all(f.data)
            .await
            .map_err(|e| remote(format!("cannot write {tmp} on {at}: {e}")))?;
        file.shutdown().await.map_err(|e| remote(format!("cannot write {tmp} on {at}: {e}")))?;
        // The mode as asked, whatever the server's umask did to it.
        sftp.set_metadata(tmp.as_str(), attrs)
            .await
            .map_err(failed(format!("cannot set the mode of {tmp}")))?;
    }
    for f in files {
        let (tmp, old) = (format!("{}.certhub-new", f.path), format!("{}.certhub-old", f.path));
        let had = sftp
            .try_exists(f.path.as_str())
            .await
            .map_err(failed(format!("cannot look at {}", f.path)))?;
        if had {
            sftp.rename(f.path.as_str(), old.as_str())
                .await
                .map_err(failed(format!("cannot replace {}", f.path)))?;
        }
        sftp.rename(tmp.as_str(), f.path.as_str())
            .await
            .map_err(failed(format!("cannot rename {tmp} to {}", f.path)))?;
        if had {
            let _ = sftp.remove_file(old.as_str()).await;
        }
    }
    let _ = sftp.close().await;
    let _ = session.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    Ok(())
}
