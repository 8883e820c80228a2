//! `nginx:` and `apache:` tasks: the TLS server block (virtual host) answering to a name is
//! pointed at the certificate, the configuration tested and the server reloaded; if the
//! test or the reload fails, the previous configuration is put back (and reloaded).
//!
//! The files are written beside the previous ones with the serial in their names
//! (`fullchain-SERIAL.pem`, `privkey-SERIAL.pem`), so the previous configuration still finds
//! its own; once the new one is in use, the older files are removed.
//!
//! Also here: reading a server's configuration from disk with its includes, for these
//! tasks and for discovery (`certhub_core::discover` parses; this reads the files).

use std::path::{Path, PathBuf};

use certhub_core::deploy::WebServerSite;
use certhub_core::discover::{
    self, DiscoverError, Discovery, IncludeRequest, Source, WebServer, glob_match, has_glob,
};
use certhub_core::identifier::RequestRules;

use crate::Error;
use crate::files::{NewFile, Ownership};

/// Where each server keeps its main configuration file, in the order tried.
pub const NGINX_CONFIGS: &[&str] = &["/etc/nginx/nginx.conf", "/usr/local/etc/nginx/nginx.conf"];
/// Where Apache keeps its main configuration file, in the order tried.
pub const APACHE_CONFIGS: &[&str] = &[
    "/etc/apache2/apache2.conf",
    "/etc/httpd/conf/httpd.conf",
    "/usr/local/etc/apache24/httpd.conf",
];

/// Reads the sites of `main` and everything it includes, from disk.
pub fn discover(
    server: WebServer,
    main: Source,
    rules: &RequestRules,
) -> Result<Discovery, DiscoverError> {
    match server {
        WebServer::Nginx => discover::nginx(main, rules, resolve),
        WebServer::Apache => discover::apache(main, rules, resolve),
    }
}

/// What a task changes: the configuration file and its text before and after.
struct Edit {
    file: PathBuf,
    before: String,
    after: String,
}

/// Points the site at `fullchain` and `key` (and, for Apache, `chain` where a chain file is
/// named): the edit to make, or why it cannot be made.
fn edit(
    server: WebServer,
    site: &WebServerSite,
    config: &Path,
    fullchain: &Path,
    chain: &Path,
    key: &Path,
) -> Result<Edit, String> {
    let text = std::fs::read_to_string(config).map_err(|e| {
        format!("cannot read {}: {e}; name the configuration with config=PATH", config.display())
    })?;
    let found =
        discover(server, Source { path: config.to_path_buf(), text }, &RequestRules::default())
            .map_err(|e| format!("cannot read the configuration: {e}"))?;
    let what = match server {
        WebServer::Nginx => "server block",
        WebServer::Apache => "virtual host",
    };
    let answers = |s: &&discover::Site| {
        s.names.iter().any(|n| {
            n.written.eq_ignore_ascii_case(&site.site) || n.identifier.to_string() == site.site
        })
    };
    let all: Vec<&discover::Site> = found.sites.iter().filter(answers).collect();
    let tls: Vec<&discover::Site> = all.iter().copied().filter(|s| s.tls).collect();
    let chosen = match (tls.as_slice(), all.as_slice()) {
        ([one], _) => *one,
        ([], []) => {
            return Err(format!(
                "no {what} in {} (and the files it includes) answers to {}",
                config.display(),
                site.site
            ));
        }
        ([], some) => {
            let at: Vec<String> = some.iter().map(|s| s.at.to_string()).collect();
            return Err(format!(
                "the {what} answering to {} ({}) serves no TLS: add a TLS listener to it first",
                site.site,
                at.join(", ")
            ));
        }
        (many, _) => {
            let at: Vec<String> = many.iter().map(|s| s.at.to_string()).collect();
            return Err(format!(
                "{} TLS {what}s answer to {} ({}): name one the others do not answer to",
                many.len(),
                site.site,
                at.join(", ")
            ));
        }
    };
    let file = chosen.at.file.clone();
    let before = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let after = match server {
        WebServer::Nginx => nginx_edit(&before, chosen.at.line, fullchain, key),
        WebServer::Apache => apache_edit(&before, chosen.at.line, fullchain, chain, key),
    }
    .map_err(|e| format!("{}:{}: {e}", file.display(), chosen.at.line))?;
    Ok(Edit { file, before, after })
}

/// A path as a configuration argument: quoted when it must be.
fn argument(path: &Path) -> String {
    let p = path.display().to_string();
    if p.contains(|c: char| c.is_whitespace() || c == ';' || c == '#' || c == '"' || c == '\'') {
        format!("\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        p
    }
}

/// `text` with the `server` block starting on line `line` pointed at `fullchain` and `key`.
fn nginx_edit(text: &str, line: usize, fullchain: &Path, key: &Path) -> Result<String, String> {
    let line_start: usize =
        text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    // The block begins after the word `server` on that line.
    let start = text[line_start..].find("server").map_or(line_start, |o| line_start + o + 6);
    let bytes = text.as_bytes();
    // Tokens of the block: words (quoted or not), `{`, `}`, `;`, comments skipped.
    let mut i = start;
    let mut depth = 0usize;
    let mut open = None;
    // (directive name, start of its first argument, the `;` after its arguments)
    let mut found: Vec<(String, usize, usize)> = Vec::new();
    let mut words: Vec<(String, usize)> = Vec::new();
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'{' => {
                depth += 1;
                if depth == 1 {
                    open = Some(i);
                }
                words.clear();
            }
            b'}' => {
                if depth <= 1 {
                    break;
                }
                depth -= 1;
                words.clear();
            }
            b';' => {
                if depth == 1
                    && let Some((name, _)) = words.first()
                {
                    let name = name.to_ascii_lowercase();
                    if name == "ssl_certificate" || name == "ssl_certificate_key" {
                        let arg = words.get(1).map(|(_, at)| *at).unwrap_or(i);
                        found.push((name, arg, i));
                    }
                }
                words.clear();
            }
            c if c.is_ascii_whitespace() => {}
            b'"' | b'\'' => {
                let at = i;
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                words.push((text[at..(i + 1).min(text.len())].to_string(), at));
            }
            _ => {
                let at = i;
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !b"{};#".contains(&bytes[i])
                {
                    i += 1;
                }
                words.push((text[at..i].to_string(), at));
                continue;
            }
        }
        i += 1;
    }
    let open = open.ok_or("the server block has no `{`")?;
    for name in ["ssl_certificate", "ssl_certificate_key"] {
        let n = found.iter().filter(|(d, _, _)| d == name).count();
        if n > 1 {
            return Err(format!(
                "the server block has {n} {name} lines (one per key type): certhub points one \
                 pair; keep one, or use a files: task and a command"
            ));
        }
    }
    let mut out = text.to_string();
    let mut missing = Vec::new();
    // Replace from the end, so earlier offsets stay right.
    found.sort_by_key(|(_, at, _)| std::cmp::Reverse(*at));
    for (name, path) in [("ssl_certificate", fullchain), ("ssl_certificate_key", key)] {
        if !found.iter().any(|(d, _, _)| d == name) {
            missing.push(format!("ssl_certificate{} {};", &name[15..], argument(path)));
        }
    }
    for (name, from, to) in &found {
        let path = if name == "ssl_certificate" { fullchain } else { key };
        out.replace_range(*from..*to, &argument(path));
    }
    if !missing.is_empty() {
        let indent = "    ";
        let lines: String = missing.iter().map(|l| format!("\n{indent}{l}")).collect();
        out.insert_str(open + 1, &lines);
    }
    Ok(out)
}

/// `text` with the `<VirtualHost>` starting on line `line` pointed at the files.
fn apache_edit(
    text: &str,
    line: usize,
    fullchain: &Path,
    chain: &Path,
    key: &Path,
) -> Result<String, String> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let first = line.saturating_sub(1);
    let mut end = None;
    let mut seen = [false; 2];
    for (n, l) in lines.iter_mut().enumerate().skip(first + 1) {
        let trimmed = l.trim_start();
        let word = trimmed.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
        if word.starts_with("</virtualhost") {
            end = Some(n);
            break;
        }
        let path = match word.as_str() {
            "sslcertificatefile" => {
                seen[0] = true;
                fullchain
            }
            "sslcertificatekeyfile" => {
                seen[1] = true;
                key
            }
            "sslcertificatechainfile" => chain,
            _ => continue,
        };
        let indent = &l[..l.len() - trimmed.len()];
        let name = trimmed.split_whitespace().next().unwrap_or_default();
        let newline = if l.ends_with('\n') { "\n" } else { "" };
        *l = format!("{indent}{name} {}{newline}", argument(path));
    }
    let end = end.ok_or("the virtual host has no </VirtualHost>")?;
    let mut add = Vec::new();
    if !seen[0] {
        add.push(format!("    SSLCertificateFile {}\n", argument(fullchain)));
    }
    if !seen[1] {
        add.push(format!("    SSLCertificateKeyFile {}\n", argument(key)));
    }
    for (k, l) in add.into_iter().enumerate() {
        lines.insert(end + k, l);
    }
    Ok(lines.concat())
}

/// The commands a task tests and reloads with.
fn commands(server: WebServer, site: &WebServerSite, config: &Path) -> (String, String) {
    let c = argument(config);
    let (test, reload) = match server {
        WebServer::Nginx => (format!("nginx -t -q -c {c}"), format!("nginx -s reload -c {c}")),
        WebServer::Apache => ("apachectl configtest".to_string(), "apachectl graceful".to_string()),
    };
    (site.test.clone().unwrap_or(test), site.reload.clone().unwrap_or(reload))
}

/// The configuration a task edits: the one named, else the server's usual one.
pub(crate) fn config_of(server: WebServer, site: &WebServerSite) -> Result<PathBuf, String> {
    if let Some(c) = &site.config {
        return Ok(c.clone());
    }
    let defaults = match server {
        WebServer::Nginx => NGINX_CONFIGS,
        WebServer::Apache => APACHE_CONFIGS,
    };
    defaults.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| {
        format!("no configuration at {}: name it with config=PATH", defaults.join(" or "))
    })
}

/// What the task would change, checked without changing anything (a dry run).
pub(crate) fn check(server: WebServer, site: &WebServerSite, dir: &Path) -> Result<String, Error> {
    let config = config_of(server, site).map_err(Error::WebServer)?;
    let (f, c, k) = (dir.join("fullchain.pem"), dir.join("chain.pem"), dir.join("privkey.pem"));
    let e = edit(server, site, &config, &f, &c, &k).map_err(Error::WebServer)?;
    Ok(e.file.display().to_string())
}

/// Writes the files, points the site at them, tests and reloads; on a failure, the previous
/// configuration is put back.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn deploy(
    server: WebServer,
    site: &WebServerSite,
    dir: &Path,
    serial: &str,
    pems: [&[u8]; 3],
    env: &[(String, String)],
    timeout: std::time::Duration,
) -> Result<String, Error> {
    let fail = Error::WebServer;
    let config = config_of(server, site).map_err(fail)?;
    let serial = serial.to_ascii_lowercase();
    let fullchain = dir.join(format!("fullchain-{serial}.pem"));
    let chain = dir.join(format!("chain-{serial}.pem"));
    let key = dir.join(format!("privkey-{serial}.pem"));
    // Found first: nothing is written for a site that is not there.
    let e = edit(server, site, &config, &fullchain, &chain, &key).map_err(fail)?;
    let [full_pem, chain_pem, key_pem] = pems;
    let ours = [
        NewFile { path: fullchain.clone(), data: full_pem, mode: 0o644 },
        NewFile { path: chain.clone(), data: chain_pem, mode: 0o644 },
        NewFile { path: key.clone(), data: key_pem, mode: 0o600 },
    ];
    crate::files::write_all(&ours, Ownership::default())?;
    let mode = std::fs::metadata(&e.file)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o644);
    let (test, reload) = commands(server, site, &config);
    let ours = [fullchain.as_path(), chain.as_path(), key.as_path()];
    crate::files::write_atomic(&e.file, e.after.as_bytes(), mode, Ownership::default())?;
    if let Err(why) = crate::command::run(&test, env, timeout).await {
        let why = format!("the configuration test `{test}` failed: {}", said(why));
        return Err(put_back(&e, mode, &ours, why));
    }
    if let Err(why) = crate::command::run(&reload, env, timeout).await {
        let err = put_back(&e, mode, &ours, format!("the reload `{reload}` failed: {}", said(why)));
        let _ = crate::command::run(&reload, env, timeout).await;
        return Err(err);
    }
    // In use: the files of earlier serials can go.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let older = ["fullchain-", "chain-", "privkey-"].iter().any(|p| name.starts_with(p))
                && name.ends_with(".pem")
                && !name.contains(&serial);
            if older {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(format!("pointed {} at {} and reloaded", e.file.display(), fullchain.display()))
}

/// Puts the configuration back as it was before `e`, removes the files written for it, and
/// says so after `why`.
fn put_back(e: &Edit, mode: u32, ours: &[&Path], why: String) -> Error {
    let restored =
        crate::files::write_atomic(&e.file, e.before.as_bytes(), mode, Ownership::default());
    // The files are the previous configuration's own when it named them already.
    if e.before != e.after {
        for f in ours {
            let _ = std::fs::remove_file(f);
        }
    }
    match restored {
        Ok(()) => Error::WebServer(format!(
            "{why}; the previous configuration of {} is back",
            e.file.display()
        )),
        Err(r) => Error::WebServer(format!(
            "{why}; and the previous configuration could not be put back: {r}"
        )),
    }
}

/// What a failed command said, without the word "command" twice.
fn said(e: Error) -> String {
    match e {
        Error::CommandFailed { status, output } if output.is_empty() => status,
        Error::CommandFailed { status, output } => format!("{status}: {output}"),
        other => other.to_string(),
    }
}

/// Turns an include into the files it names, read from disk.
fn resolve(req: &IncludeRequest<'_>) -> Result<Vec<Source>, String> {
    let paths = if req.glob {
        let mut matches = expand_glob(&req.pattern);
        matches.sort();
        if req.directory_contents {
            let mut files = Vec::new();
            for dir in matches {
                files.extend(files_below(&dir)?);
            }
            files
        } else {
            matches.into_iter().filter(|p| p.is_file()).collect()
        }
    } else if req.pattern.is_dir() {
        if !req.directory_contents {
            return Err(format!("{} is a directory", req.pattern.display()));
        }
        files_below(&req.pattern)?
    } else if !req.pattern.exists() {
        if req.optional {
            return Ok(Vec::new());
        }
        return Err(format!("{} does not exist", req.pattern.display()));
    } else {
        vec![req.pattern.clone()]
    };
    paths
        .into_iter()
        .map(|path| {
            std::fs::read_to_string(&path)
                .map(|text| Source { path: path.clone(), text })
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        })
        .collect()
}

/// The paths matching a pattern whose components may hold glob characters.
fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for part in pattern.components() {
        let part = part.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &found {
            if !has_glob(&part) {
                let p = base.join(&*part);
                if p.exists() || p.as_os_str() == "/" {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() { Path::new(".") } else { base.as_path() };
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| glob_match(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found
}

/// Every file below `path` (itself if it is a file), in sorted order, or the directory
/// that could not be read. Directories are followed to a fixed depth, so a symbolic link to
/// a parent cannot loop.
fn files_below(path: &Path) -> Result<Vec<PathBuf>, String> {
    fn walk(path: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), String> {
        if !path.is_dir() {
            out.push(path.to_path_buf());
            return Ok(());
        }
        if depth == 0 {
            return Ok(());
        }
        let unreadable = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(path).map_err(unreadable)? {
            entries.push(entry.map_err(unreadable)?.path());
        }
        entries.sort();
        for entry in entries {
            walk(&entry, depth - 1, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(path, 16, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_lines_are_replaced_in_their_block_only_and_added_when_missing() {
        let text = "http {\n  server { # first\n    listen 443 ssl;\n    server_name a.test;\n    ssl_certificate \"/old/a b.pem\";  # old\n    ssl_certificate_key /old/a.key;\n    location / { ssl_certificate nested; }\n  }\n  server {\n    listen 443 ssl; server_name b.test;\n  }\n}\n";
        let (full, key) = (Path::new("/n/full.pem"), Path::new("/n/key.pem"));
        let a = nginx_edit(text, 2, full, key).unwrap();
        assert!(a.contains("    ssl_certificate /n/full.pem;  # old\n"), "{a}");
        assert!(a.contains("    ssl_certificate_key /n/key.pem;\n"), "{a}");
        assert!(a.contains("ssl_certificate nested;"), "a nested block is not the server's: {a}");
        let b = nginx_edit(text, 9, Path::new("/with space/f.pem"), key).unwrap();
        assert!(
            b.contains("server {\n    ssl_certificate \"/with space/f.pem\";\n    ssl_certificate_key /n/key.pem;\n    listen 443 ssl; server_name b.test;"),
            "{b}"
        );
        assert!(b.contains("ssl_certificate \"/old/a b.pem\""), "the other block stays: {b}");
        let two = "server {\n ssl_certificate a; ssl_certificate b;\n}\n";
        assert!(nginx_edit(two, 1, full, key).unwrap_err().contains("2 ssl_certificate lines"));
    }

    #[test]
    fn apache_lines_are_replaced_in_their_virtual_host_and_added_when_missing() {
        let text = "<VirtualHost *:443>\n  ServerName a.test\n  SSLEngine on\n  sslcertificatefile /old/a.pem\n  SSLCertificateChainFile /old/chain.pem\n</VirtualHost>\n<VirtualHost *:443>\n  ServerName b.test\n</VirtualHost>\n";
        let (full, chain, key) = (Path::new("/f.pem"), Path::new("/c.pem"), Path::new("/k.pem"));
        let a = apache_edit(text, 1, full, chain, key).unwrap();
        assert!(a.contains("  sslcertificatefile /f.pem\n  SSLCertificateChainFile /c.pem\n    SSLCertificateKeyFile /k.pem\n</VirtualHost>\n<VirtualHost"), "{a}");
        let b = apache_edit(text, 7, full, chain, key).unwrap();
        assert!(b.ends_with("  ServerName b.test\n    SSLCertificateFile /f.pem\n    SSLCertificateKeyFile /k.pem\n</VirtualHost>\n"), "{b}");
        assert!(b.contains("sslcertificatefile /old/a.pem"), "{b}");
    }
}
