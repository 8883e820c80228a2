//! What an agent lets the hub's tasks do on its machine: a hub that is broken into must not
//! become root on every target. Commands run only when allowed (all of them, or those listed
//! exactly), and files are written only under the directories the agent was started with.

use std::path::{Component, Path, PathBuf};

use certhub_core::{ChallengeConfig, DeployAction, DeployTask};

/// What the agent was started to allow.
#[derive(Debug, Clone, Default)]
pub struct Safety {
    /// Run any `command:` task (`--allow-commands`).
    pub all_commands: bool,
    /// Run these commands, written exactly so (`--allow-command`).
    pub commands: Vec<String>,
    /// Write files only under these (`--allow-dir`).
    pub dirs: Vec<PathBuf>,
}

impl Safety {
    /// Why task `task` may not run here, if it may not.
    pub fn refusal(&self, task: &DeployTask) -> Option<String> {
        match &task.action {
            DeployAction::Command { run } => {
                if self.all_commands || self.commands.iter().any(|c| c == run) {
                    None
                } else {
                    Some(format!(
                        "task {}: this agent runs no commands (`{run}`): start `certhub agent \
                         run` with --allow-commands, or --allow-command '{run}'",
                        task.name
                    ))
                }
            }
            DeployAction::Files(f) => self.dir_refusal(&format!("task {}", task.name), &f.dir),
            DeployAction::Pkcs12(p) => {
                let dir = p.file.parent().unwrap_or(Path::new("/"));
                self.dir_refusal(&format!("task {}", task.name), dir)
            }
            DeployAction::Webhook { .. } => None,
            DeployAction::Sftp { .. } | DeployAction::Ssh { .. } => Some(format!(
                "task {}: {} tasks reach other machines from the hub, with its credentials; \
                 an agent runs tasks on its own machine",
                task.name,
                task.action.kind()
            )),
            DeployAction::Nginx(site) | DeployAction::Apache(site) => {
                let what = format!("task {}", task.name);
                if !self.all_commands {
                    return Some(format!(
                        "{what}: a {} task tests and reloads the server with commands: start \
                         `certhub agent run` with --allow-commands",
                        task.action.kind()
                    ));
                }
                let dir = site.dir.clone().unwrap_or_else(|| PathBuf::from("/etc/ssl/certhub"));
                let config = site.config.clone().unwrap_or_else(|| {
                    PathBuf::from(match &task.action {
                        DeployAction::Nginx(_) => "/etc/nginx",
                        _ => "/etc/apache2",
                    })
                });
                let config_dir = if config.is_dir() {
                    config
                } else {
                    config.parent().map(Path::to_path_buf).unwrap_or_default()
                };
                self.dir_refusal(&what, &dir).or_else(|| self.dir_refusal(&what, &config_dir))
            }
        }
    }

    /// Why a challenge configured as `config` may not be presented here, if it may not: a
    /// webroot is written only under `--allow-dir`, and dns-01 is the hub's to answer.
    pub fn challenge_refusal(&self, config: &ChallengeConfig) -> Option<String> {
        match config {
            ChallengeConfig::Http01Listen { .. } | ChallengeConfig::TlsAlpn01Listen { .. } => None,
            ChallengeConfig::Http01Webroot { webroot } => {
                self.dir_refusal("the http-01 webroot", webroot)
            }
            other => Some(format!(
                "{} challenges are answered by the hub, not by an agent",
                other.kind()
            )),
        }
    }

    fn dir_refusal(&self, what: &str, dir: &Path) -> Option<String> {
        if self.dirs.iter().any(|allowed| within(dir, allowed)) {
            return None;
        }
        let allowed = if self.dirs.is_empty() {
            "none is allowed".to_string()
        } else {
            let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
            format!("it writes only under {}", dirs.join(", "))
        };
        Some(format!(
            "{what}: this agent may not write to {} ({allowed}): start `certhub agent run` \
             with --allow-dir {}",
            dir.display(),
            dir.display()
        ))
    }
}

/// Whether `dir` is `allowed` or below it, after resolving what exists of both (so a
/// symbolic link cannot lead out) and refusing `..`.
fn within(dir: &Path, allowed: &Path) -> bool {
    if !dir.is_absolute() || dir.components().any(|c| matches!(c, Component::ParentDir)) {
        return false;
    }
    let resolve = |p: &Path| -> PathBuf {
        // The longest part that exists, resolved, with the rest as written.
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        loop {
            if let Ok(real) = existing.canonicalize() {
                return rest.iter().rev().fold(real, |acc: PathBuf, part| acc.join(part));
            }
            match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_path_buf();
                }
                _ => return p.to_path_buf(),
            }
        }
    };
    resolve(dir).starts_with(resolve(allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(spec: &str) -> DeployTask {
        DeployTask::parse(spec, "t").unwrap()
    }

    #[test]
    fn commands_need_to_be_allowed() {
        let none = Safety::default();
        let refusal = none.refusal(&task("command:systemctl reload nginx")).unwrap();
        assert!(refusal.contains("--allow-commands"), "{refusal}");
        let listed =
            Safety { commands: vec!["systemctl reload nginx".into()], ..Default::default() };
        assert_eq!(listed.refusal(&task("command:systemctl reload nginx")), None);
        assert!(listed.refusal(&task("command:rm -rf /")).is_some());
        let all = Safety { all_commands: true, ..Default::default() };
        assert_eq!(all.refusal(&task("command:true")), None);
    }

    #[test]
    fn challenges_write_only_under_allowed_directories_and_dns_stays_on_the_hub() {
        let tmp = tempfile::tempdir().unwrap();
        let safety = Safety { dirs: vec![tmp.path().to_path_buf()], ..Default::default() };
        let config = |spec: &str| certhub_core::ChallengeSpec::parse(spec).unwrap().config;
        assert_eq!(safety.challenge_refusal(&config("http-01:listen=0.0.0.0:80")), None);
        assert_eq!(safety.challenge_refusal(&config("tls-alpn-01:listen=0.0.0.0:443")), None);
        let inside = format!("http-01:webroot={}/www", tmp.path().display());
        assert_eq!(safety.challenge_refusal(&config(&inside)), None);
        let outside = safety.challenge_refusal(&config("http-01:webroot=/var/www")).unwrap();
        assert!(outside.contains("the http-01 webroot") && outside.contains("--allow-dir"));
        let dns = safety.challenge_refusal(&config("dns-01:exec=/bin/true")).unwrap();
        assert!(dns.contains("answered by the hub"), "{dns}");
    }

    #[test]
    fn files_go_only_under_allowed_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let allowed = tmp.path().join("ssl");
        std::fs::create_dir(&allowed).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("out")).unwrap();
        let safety = Safety { dirs: vec![allowed.clone()], ..Default::default() };
        let files = |dir: &Path| task(&format!("files:dir={}", dir.display()));
        assert_eq!(safety.refusal(&files(&allowed)), None);
        assert_eq!(safety.refusal(&files(&allowed.join("web/new"))), None);
        for outside in [tmp.path().join("other"), allowed.join("out"), allowed.join("../x")] {
            let refusal = safety.refusal(&files(&outside)).unwrap();
            assert!(refusal.contains("--allow-dir"), "{refusal}");
        }
        let p12 = task(&format!("pkcs12:file={}/x.p12,password=pw", tmp.path().display()));
        assert!(safety.refusal(&p12).is_some());
        assert!(Safety::default().refusal(&files(&allowed)).unwrap().contains("none is allowed"));
    }
}
