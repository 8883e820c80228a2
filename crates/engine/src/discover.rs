//! Discovery from disk: a web server's configuration read with its includes (globs,
//! directories, optional includes), and the names it serves (see `certhub_core::discover`
//! for the parsing, which reads no file itself).

use std::path::{Path, PathBuf};

use certhub_core::Identifier;
use certhub_core::discover::{
    self, Discovery, IncludeRequest, Site, Source, WebServer, glob_match, has_glob, matches_pattern,
};
use certhub_core::identifier::RequestRules;

use crate::error::{Error, Kind};

/// Where each server keeps its main configuration file, in the order tried.
const NGINX_CONFIGS: &[&str] = &["/etc/nginx/nginx.conf", "/usr/local/etc/nginx/nginx.conf"];
const APACHE_CONFIGS: &[&str] = &[
    "/etc/apache2/apache2.conf",
    "/etc/httpd/conf/httpd.conf",
    "/usr/local/etc/apache24/httpd.conf",
];

/// Reads `server`'s configuration from `config` (else its usual places) with everything it
/// includes; `rules` judge the names found.
pub fn read_config(
    server: WebServer,
    config: Option<&Path>,
    rules: &RequestRules,
) -> Result<Discovery, Error> {
    let defaults = match server {
        WebServer::Nginx => NGINX_CONFIGS,
        WebServer::Apache => APACHE_CONFIGS,
    };
    let main = match config {
        Some(p) => p.to_path_buf(),
        None => defaults.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| {
            Error::new(
                Kind::NotFound,
                format!(
                    "no configuration found at {}; name it with --config PATH",
                    defaults.join(" or ")
                ),
            )
        })?,
    };
    let text = std::fs::read_to_string(&main)
        .map_err(|e| Error::new(Kind::NotFound, format!("cannot read {}: {e}", main.display())))?;
    let source = Source { path: main, text };
    match server {
        WebServer::Nginx => discover::nginx(source, rules, resolve),
        WebServer::Apache => discover::apache(source, rules, resolve),
    }
    .map_err(|e| Error::new(Kind::Invalid, format!("cannot read the configuration: {e}")))
}

/// The certifiable names of `sites` that match one of `patterns` (all when there are none).
pub fn selected(found: &Discovery, sites: &[&Site], patterns: &[String]) -> Vec<Identifier> {
    found
        .identifiers()
        .into_iter()
        .filter(|id| sites.iter().any(|s| s.names.iter().any(|n| &n.identifier == id)))
        .filter(|id| patterns.is_empty() || patterns.iter().any(|p| matches_pattern(p, id)))
        .collect()
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
