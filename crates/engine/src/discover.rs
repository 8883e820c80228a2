//! Discovery from disk: a web server's configuration read with its includes (globs,
//! directories, optional includes), and the names it serves (see `certhub_core::discover`
//! for the parsing, which reads no file itself).

use std::path::{Path, PathBuf};

use certhub_core::Identifier;
use certhub_core::discover::{Discovery, Site, Source, WebServer, matches_pattern};
use certhub_core::identifier::RequestRules;

use crate::error::{Error, Kind};

use certhub_deploy::webserver::{APACHE_CONFIGS, NGINX_CONFIGS};

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
    certhub_deploy::webserver::discover(server, Source { path: main, text }, rules)
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
