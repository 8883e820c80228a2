//! `certhub discover nginx|apache`: the server names in a web server's configuration, read
//! from disk with its includes, and optionally a managed certificate for them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use certhub_core::Identifier;
use certhub_core::discover::{
    self, Discovery, IncludeRequest, Site, Source, WebServer, glob_match, has_glob, matches_pattern,
};
use certhub_core::identifier::RequestRules;
use serde_json::json;

use crate::args::{CertAdd, Discover, DiscoverServer};
use crate::output::print_json;
use certhub_engine::Kind;
use certhub_engine::error::fail;

/// Where each server keeps its main configuration file, in the order tried.
const NGINX_CONFIGS: &[&str] = &["/etc/nginx/nginx.conf", "/usr/local/etc/nginx/nginx.conf"];
const APACHE_CONFIGS: &[&str] = &[
    "/etc/apache2/apache2.conf",
    "/etc/httpd/conf/httpd.conf",
    "/usr/local/etc/apache24/httpd.conf",
];

pub async fn run(ctx: &crate::context::Context, args: Discover) -> anyhow::Result<()> {
    let (server, defaults) = match args.server {
        DiscoverServer::Nginx => (WebServer::Nginx, NGINX_CONFIGS),
        DiscoverServer::Apache => (WebServer::Apache, APACHE_CONFIGS),
    };
    let main = match &args.config {
        Some(p) => p.clone(),
        None => defaults.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| {
            fail(
                Kind::NotFound,
                format!(
                    "no configuration found at {}; name it with --config PATH",
                    defaults.join(" or ")
                ),
            )
        })?,
    };
    let text = std::fs::read_to_string(&main)
        .with_context(|| format!("cannot read {}", main.display()))
        .map_err(|e| fail(Kind::NotFound, format!("{e:#}")))?;
    let source = Source { path: main.clone(), text };
    // Names are judged as a request to a public CA would judge them; `--create` applies the
    // account's own rules again.
    let rules = RequestRules { public_ca: !args.allow_single_label };
    let found = match server {
        WebServer::Nginx => discover::nginx(source, &rules, resolve),
        WebServer::Apache => discover::apache(source, &rules, resolve),
    }
    .map_err(|e| fail(Kind::Invalid, format!("cannot read the configuration: {e}")))?;
    let sites: Vec<&Site> = found.sites.iter().filter(|s| s.tls || !args.tls_only).collect();
    let selected: Vec<Identifier> = selected(&found, &sites, &args.patterns);

    match &args.create {
        Some(name) => create(ctx, &args, name, &selected).await,
        None if args.json => {
            print_json(&report_json(&found, &sites, &selected));
            Ok(())
        }
        None => {
            print_report(&found, &sites, &selected, &args);
            Ok(())
        }
    }
}

/// The certifiable names of `sites` that match one of `patterns` (all when there are none).
fn selected(found: &Discovery, sites: &[&Site], patterns: &[String]) -> Vec<Identifier> {
    found
        .identifiers()
        .into_iter()
        .filter(|id| sites.iter().any(|s| s.names.iter().any(|n| &n.identifier == id)))
        .filter(|id| patterns.is_empty() || patterns.iter().any(|p| matches_pattern(p, id)))
        .collect()
}

async fn create(
    ctx: &crate::context::Context,
    args: &Discover,
    name: &str,
    ids: &[Identifier],
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Err(fail(
            Kind::Invalid,
            "no names to certify were found (see `certhub discover` without --create)",
        ));
    }
    let (Some(account), false) = (&args.account, args.challenges.is_empty()) else {
        return Err(fail(Kind::Invalid, "--create needs --account and at least one --challenge"));
    };
    let (mut domains, mut ips) = (Vec::new(), Vec::new());
    for id in ids {
        match id {
            Identifier::Ip(ip) => ips.push(*ip),
            other => domains.push(other.to_string()),
        }
    }
    let add = CertAdd {
        name: name.to_string(),
        account: account.clone(),
        domains,
        ips,
        key_type: args.key_type.clone(),
        reuse_key: args.reuse_key,
        csr: None,
        profile: None,
        preferred_chain: None,
        challenges: args.challenges.clone(),
        allow_single_label: args.allow_single_label,
        deploy: args.deploy.clone(),
        renewal: Default::default(),
    };
    let store = ctx.store().await?;
    crate::cert::add(&store, add).await
}

fn report_json(found: &Discovery, sites: &[&Site], selected: &[Identifier]) -> serde_json::Value {
    json!({
        "server": match found.server { WebServer::Nginx => "nginx", WebServer::Apache => "apache" },
        "files": found.files,
        "sites": sites.iter().map(|s| json!({
            "kind": s.kind.label(),
            "at": s.at.to_string(),
            "listen": s.listen,
            "tls": s.tls,
            "names": s.names.iter().map(|n| json!({
                "identifier": n.identifier.to_string(),
                "written": n.written,
                "at": n.at.to_string(),
            })).collect::<Vec<_>>(),
            "skipped": s.skipped.iter().map(|k| json!({
                "name": k.name,
                "reason": k.reason,
                "at": k.at.to_string(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "identifiers": selected.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "warnings": found.warnings,
    })
}

fn print_report(found: &Discovery, sites: &[&Site], selected: &[Identifier], args: &Discover) {
    println!("Read {} file(s), {} site(s).", found.files.len(), sites.len());
    for site in sites {
        let listen = if site.listen.is_empty() { "-".into() } else { site.listen.join(", ") };
        let tls = if site.tls { " tls" } else { "" };
        println!("\n{} at {} (listen {listen}){tls}", site.kind.label(), site.at);
        for n in &site.names {
            let id = n.identifier.to_string();
            let written = if n.written == id { String::new() } else { format!(" ({})", n.written) };
            println!("  {id}{written}");
        }
        for k in &site.skipped {
            println!("  skipped {}: {} ({})", k.name, k.reason, k.at);
        }
    }
    for w in &found.warnings {
        eprintln!("warning: {w}");
    }
    if selected.is_empty() {
        println!("\nNo names to certify.");
        return;
    }
    let names: Vec<String> = selected.iter().map(ToString::to_string).collect();
    println!("\nNames to certify: {}", names.join(", "));
    let server = match args.server {
        DiscoverServer::Nginx => "nginx",
        DiscoverServer::Apache => "apache",
    };
    println!(
        "Create a certificate for them with:\n  certhub discover {server}{} --create NAME --account ACCOUNT --challenge SPEC",
        args.config.as_ref().map(|c| format!(" --config {}", c.display())).unwrap_or_default()
    );
}

/// Turns an include into the files it names, read from disk.
fn resolve(req: &IncludeRequest<'_>) -> Result<Vec<Source>, String> {
    let paths = if req.glob {
        let mut matches = expand_glob(&req.pattern);
        matches.sort();
        if req.directory_contents {
            matches.into_iter().flat_map(|p| files_below(&p)).collect()
        } else {
            matches.into_iter().filter(|p| p.is_file()).collect()
        }
    } else if req.pattern.is_dir() {
        if !req.directory_contents {
            return Err(format!("{} is a directory", req.pattern.display()));
        }
        files_below(&req.pattern)
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

/// Every file below `path` (itself if it is a file), in sorted order. Directories are
/// followed to a fixed depth, so a symbolic link to a parent cannot loop.
fn files_below(path: &Path) -> Vec<PathBuf> {
    fn walk(path: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if !path.is_dir() {
            out.push(path.to_path_buf());
            return;
        }
        if depth == 0 {
            return;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for entry in entries {
            walk(&entry, depth - 1, out);
        }
    }
    let mut out = Vec::new();
    walk(path, 16, &mut out);
    out
}
