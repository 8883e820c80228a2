//! Server names from web server configuration: nginx `server` blocks and Apache virtual
//! hosts, the way Certify The Web reads IIS bindings.
//!
//! The parsers read text only. Each include directive is handed to the caller as an
//! [`IncludeRequest`] (the path or glob, made absolute against nginx's configuration directory
//! or Apache's `ServerRoot`); the files the caller returns are parsed in place, inside the
//! block the directive appears in, exactly as the server would read them. An include loop,
//! nesting deeper than [`MAX_INCLUDE_DEPTH`] and more than [`MAX_FILES`] files are errors.
//!
//! Every name found goes through the identifier rules of a request ([`normalize`]); a name
//! that cannot be put in a certificate (`_`, a regular expression, a variable, `www.*`, an
//! invalid name) is kept as [`Skipped`], with the reason and where it was written.
//!
//! [`glob_match`] and [`has_glob`] are the shell-style matching both servers apply to include
//! paths, for the caller that expands them.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::identifier::{Identifier, RequestRules, normalize};

/// How deep includes may nest before the configuration is refused.
pub const MAX_INCLUDE_DEPTH: usize = 32;
/// How many files one discovery may read before the configuration is refused.
pub const MAX_FILES: usize = 4096;

/// Which web server a configuration belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebServer {
    /// nginx: `server { … }` blocks inside `http`.
    Nginx,
    /// Apache httpd: `<VirtualHost>` sections.
    Apache,
}

/// A line in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as the caller named it.
    pub file: PathBuf,
    /// The line, counted from 1.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One configuration file and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Where the text comes from; also what include loops are detected by.
    pub path: PathBuf,
    /// The file's contents.
    pub text: String,
}

/// An include directive for the caller to resolve into files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeRequest<'a> {
    /// The path or pattern as written in the directive.
    pub written: &'a str,
    /// The path or pattern, absolute when the base directory is.
    pub pattern: PathBuf,
    /// Whether `pattern` contains glob characters (see [`has_glob`]).
    pub glob: bool,
    /// A missing file, or a glob that matches nothing, is not an error: nginx globs and
    /// Apache's `IncludeOptional`.
    pub optional: bool,
    /// A directory stands for every file below it, in sorted order (Apache). Otherwise a
    /// directory named outright is an error and directories among glob matches are passed
    /// over (nginx).
    pub directory_contents: bool,
    /// Where the directive is.
    pub at: &'a Location,
}

/// What a kind of site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteKind {
    /// An nginx `server { … }` block.
    Server,
    /// An Apache `<VirtualHost …>` section.
    VirtualHost,
    /// Apache's main server: a `ServerName` outside every virtual host.
    MainServer,
}

impl SiteKind {
    /// A short label: `server`, `virtualhost` or `main`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::VirtualHost => "virtualhost",
            Self::MainServer => "main",
        }
    }
}

/// One server block or virtual host and the names it answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Block or section.
    pub kind: SiteKind,
    /// Where it starts.
    pub at: Location,
    /// Each `listen` directive's arguments (nginx), the `<VirtualHost>` addresses, or the
    /// global `Listen` values for Apache's main server.
    pub listen: Vec<String>,
    /// Whether it serves TLS: `ssl` or `quic` on a `listen`, port 443, or `SSLEngine on`.
    pub tls: bool,
    /// The names that can be certified, without duplicates, in the order written.
    pub names: Vec<FoundName>,
    /// The names that cannot, with the reason.
    pub skipped: Vec<Skipped>,
}

impl Site {
    fn new(kind: SiteKind, at: Location) -> Self {
        Self { kind, at, listen: Vec::new(), tls: false, names: Vec::new(), skipped: Vec::new() }
    }
}

/// A name that can go in a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundName {
    /// The identifier, normalised as `cert add` would.
    pub identifier: Identifier,
    /// The name as written (`.example.com` stands for `example.com` and `*.example.com`).
    pub written: String,
    /// Where it is written.
    pub at: Location,
}

/// A name that cannot go in a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The name as written (for `.example.com`, the name it stands for).
    pub name: String,
    /// Why it is skipped, in one sentence.
    pub reason: String,
    /// Where it is written.
    pub at: Location,
}

/// Everything found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The server the configuration is for.
    pub server: WebServer,
    /// The server blocks or virtual hosts, in the order read.
    pub sites: Vec<Site>,
    /// Every file read, in order, the main one first.
    pub files: Vec<PathBuf>,
    /// Directives passed over, each naming its file and line.
    pub warnings: Vec<String>,
}

impl Discovery {
    /// Every certifiable name of every site, without duplicates, in the order first found.
    pub fn identifiers(&self) -> Vec<Identifier> {
        let mut out: Vec<Identifier> = Vec::new();
        for name in self.sites.iter().flat_map(|s| &s.names) {
            if !out.contains(&name.identifier) {
                out.push(name.identifier.clone());
            }
        }
        out
    }
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not valid configuration (an unbalanced block, an unterminated quote).
    Syntax,
    /// An include could not be resolved (the caller's message says why).
    Include,
    /// A file includes itself, directly or through others.
    IncludeLoop,
    /// Includes nest deeper than [`MAX_INCLUDE_DEPTH`] or read more than [`MAX_FILES`].
    TooDeep,
}

/// A configuration that cannot be read, with the file and line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct DiscoverError {
    /// Where.
    pub at: Location,
    /// What kind of problem.
    pub kind: ErrorKind,
    /// What, in one sentence.
    pub message: String,
}

impl DiscoverError {
    fn new(at: Location, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { at, kind, message: message.into() }
    }
}

/// Reads an nginx configuration: `main` is nginx.conf (or a single site file), whose
/// directory is where relative includes start. `resolve` turns each include into the files
/// it names, in order. Names are checked against `rules`.
pub fn nginx<R>(main: Source, rules: &RequestRules, resolve: R) -> Result<Discovery, DiscoverError>
where
    R: FnMut(&IncludeRequest<'_>) -> Result<Vec<Source>, String>,
{
    Walk::new(WebServer::Nginx, &main.path, *rules, resolve).run(main)
}

/// Reads an Apache configuration: `main` is apache2.conf or httpd.conf, whose directory is
/// the `ServerRoot` until a `ServerRoot` directive says otherwise. `resolve` turns each
/// `Include` and `IncludeOptional` into the files it names, in order. Names are checked
/// against `rules`.
pub fn apache<R>(main: Source, rules: &RequestRules, resolve: R) -> Result<Discovery, DiscoverError>
where
    R: FnMut(&IncludeRequest<'_>) -> Result<Vec<Source>, String>,
{
    Walk::new(WebServer::Apache, &main.path, *rules, resolve).run(main)
}

/// Does `pattern` select `id`? A pattern is a name, or `*.example.com` for every name below
/// example.com (as in a challenge spec's `domains=`); case and a trailing dot do not matter.
pub fn matches_pattern(pattern: &str, id: &Identifier) -> bool {
    let value = id.to_string();
    let pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(base) => value.ends_with(&format!(".{base}")),
        None => value == pattern,
    }
}

/// Does a path contain shell glob characters (`*`, `?`, `[`)?
pub fn has_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Shell-style matching of one path component: `*` (any run), `?` (one character),
/// `[abc]`, `[a-z]`, `[!a]` and `[^a]`, `\` quoting the next character. As with glob(3), a
/// name starting with `.` is matched only by a pattern starting with `.`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class_match(&p, pi, s[si]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None => (s[si] == '[').then_some(pi + 1),
            },
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == s[si]).then_some(pi + 2),
            Some(c) => (*c == s[si]).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                si += 1;
            }
            (None, Some((star_pi, star_si))) => {
                pi = star_pi + 1;
                si = star_si + 1;
                star = Some((star_pi, star_si + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the bracket expression starting at `p[start]` (`[`): whether it
/// matched and the index after the closing `]`, or `None` when the `[` is not closed.
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|hi| *hi != ']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
}

/// A block or section being read, and the site it is when it is one.
struct Frame {
    name: String,
    line: usize,
    site: Option<usize>,
}

/// The state of one discovery.
struct Walk<R> {
    server: WebServer,
    rules: RequestRules,
    resolve: R,
    /// The directory of the main file.
    main_dir: PathBuf,
    /// Where relative includes start: nginx's configuration directory, Apache's ServerRoot.
    base: PathBuf,
    /// The files being read, outermost first.
    reading: Vec<PathBuf>,
    files: Vec<PathBuf>,
    sites: Vec<Site>,
    warnings: Vec<String>,
    /// Apache's global `Listen` values.
    main_listen: Vec<String>,
    /// Apache's main server, once a global `ServerName` is seen.
    main_site: Option<usize>,
}

impl<R> Walk<R>
where
    R: FnMut(&IncludeRequest<'_>) -> Result<Vec<Source>, String>,
{
    fn new(server: WebServer, main: &Path, rules: RequestRules, resolve: R) -> Self {
        let main_dir = main.parent().map(Path::to_path_buf).unwrap_or_default();
        Self {
            server,
            rules,
            resolve,
            base: main_dir.clone(),
            main_dir,
            reading: Vec::new(),
            files: Vec::new(),
            sites: Vec::new(),
            warnings: Vec::new(),
            main_listen: Vec::new(),
            main_site: None,
        }
    }

    fn run(mut self, main: Source) -> Result<Discovery, DiscoverError> {
        self.file(&main, &mut Vec::new())?;
        if let Some(i) = self.main_site {
            let site = &mut self.sites[i];
            site.listen = std::mem::take(&mut self.main_listen);
            site.tls = site.listen.iter().any(|l| address_port(l) == Some(443));
        }
        Ok(Discovery {
            server: self.server,
            sites: self.sites,
            files: self.files,
            warnings: self.warnings,
        })
    }

    fn file(&mut self, source: &Source, frames: &mut Vec<Frame>) -> Result<(), DiscoverError> {
        self.reading.push(source.path.clone());
        self.files.push(source.path.clone());
        let text = source.text.strip_prefix('\u{feff}').unwrap_or(&source.text);
        match self.server {
            WebServer::Nginx => self.nginx_file(&source.path, text, frames)?,
            WebServer::Apache => self.apache_file(&source.path, text, frames)?,
        }
        self.reading.pop();
        Ok(())
    }

    fn include(
        &mut self,
        written: &str,
        optional: bool,
        at: Location,
        frames: &mut Vec<Frame>,
    ) -> Result<(), DiscoverError> {
        if written.contains('$') {
            self.warnings.push(format!(
                "{at}: the include of {written} uses a variable defined outside the configuration; it was not followed"
            ));
            return Ok(());
        }
        let path = Path::new(written);
        let pattern = if path.is_absolute() { path.to_path_buf() } else { self.base.join(path) };
        let request = IncludeRequest {
            written,
            glob: has_glob(written),
            pattern,
            optional,
            directory_contents: self.server == WebServer::Apache,
            at: &at,
        };
        let sources = (self.resolve)(&request).map_err(|message| {
            DiscoverError::new(
                at.clone(),
                ErrorKind::Include,
                format!("include {written}: {message}"),
            )
        })?;
        for source in sources {
            if let Some(first) = self.reading.iter().position(|p| *p == source.path) {
                let chain: Vec<String> = self.reading[first..]
                    .iter()
                    .chain(std::iter::once(&source.path))
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(DiscoverError::new(
                    at,
                    ErrorKind::IncludeLoop,
                    format!("include loop: {}", chain.join(" includes ")),
                ));
            }
            if self.reading.len() >= MAX_INCLUDE_DEPTH {
                return Err(DiscoverError::new(
                    at,
                    ErrorKind::TooDeep,
                    format!(
                        "includes nest more than {MAX_INCLUDE_DEPTH} deep (at {}); is there an include loop?",
                        source.path.display()
                    ),
                ));
            }
            if self.files.len() >= MAX_FILES {
                return Err(DiscoverError::new(
                    at,
                    ErrorKind::TooDeep,
                    format!("more than {MAX_FILES} files are included; is there an include loop?"),
                ));
            }
            self.file(&source, frames)?;
        }
        Ok(())
    }

    /// Adds a written name to a site: its identifiers, or why it has none.
    fn add_name(&mut self, site: usize, written: &str, at: Location) {
        let expanded = match expand_name(self.server, written) {
            Ok(names) => names,
            Err(reason) => {
                self.sites[site].skipped.push(Skipped { name: written.to_string(), reason, at });
                return;
            }
        };
        for name in expanded {
            match normalize(std::slice::from_ref(&name), &self.rules) {
                Ok(normalized) => {
                    let site = &mut self.sites[site];
                    for identifier in normalized.identifiers {
                        if !site.names.iter().any(|n| n.identifier == identifier) {
                            site.names.push(FoundName {
                                identifier,
                                written: written.to_string(),
                                at: at.clone(),
                            });
                        }
                    }
                }
                Err(violations) => {
                    let reason = violations
                        .iter()
                        .map(|v| {
                            let quoted = format!("{:?}: ", v.identifier);
                            v.message.strip_prefix(&quoted).unwrap_or(&v.message).to_string()
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.sites[site].skipped.push(Skipped { name, reason, at: at.clone() });
                }
            }
        }
    }

    fn nginx_file(
        &mut self,
        path: &Path,
        text: &str,
        frames: &mut Vec<Frame>,
    ) -> Result<(), DiscoverError> {
        let at = |line| Location { file: path.to_path_buf(), line };
        let syntax =
            |line, message: String| DiscoverError::new(at(line), ErrorKind::Syntax, message);
        let tokens = tokenize(text).map_err(|(line, message)| syntax(line, message))?;
        let depth = frames.len();
        let mut words: Vec<(String, usize)> = Vec::new();
        for token in tokens {
            match token {
                Token::Word(word, line) => words.push((word, line)),
                Token::Semicolon(line) => {
                    let Some((_, first)) = words.first() else {
                        return Err(syntax(line, "unexpected \";\"".into()));
                    };
                    self.nginx_directive(&words, at(*first), frames)?;
                    words.clear();
                }
                Token::Open(line) => {
                    let Some((name, first)) = words.first() else {
                        return Err(syntax(line, "unexpected \"{\"".into()));
                    };
                    let parent = frames.last().map(|f| f.name.as_str());
                    let site =
                        (name == "server" && matches!(parent, None | Some("http"))).then(|| {
                            self.sites.push(Site::new(SiteKind::Server, at(*first)));
                            self.sites.len() - 1
                        });
                    frames.push(Frame { name: name.clone(), line: *first, site });
                    words.clear();
                }
                Token::Close(line) => {
                    if !words.is_empty() || frames.len() == depth {
                        return Err(syntax(line, "unexpected \"}\"".into()));
                    }
                    frames.pop();
                }
            }
        }
        if let Some((word, line)) = words.first() {
            return Err(syntax(
                *line,
                format!("unexpected end of file: the \"{word}\" directive is not ended by \";\""),
            ));
        }
        if let Some(open) = frames[depth..].last() {
            return Err(syntax(
                open.line,
                format!(
                    "unexpected end of file: the \"{}\" block is not closed by \"}}\"",
                    open.name
                ),
            ));
        }
        Ok(())
    }

    fn nginx_directive(
        &mut self,
        words: &[(String, usize)],
        at: Location,
        frames: &mut Vec<Frame>,
    ) -> Result<(), DiscoverError> {
        let site = frames.last().and_then(|f| f.site);
        match (words[0].0.as_str(), site) {
            ("include", _) => {
                let [_, (pattern, _)] = words else {
                    return Err(DiscoverError::new(
                        at,
                        ErrorKind::Syntax,
                        "\"include\" takes exactly one path",
                    ));
                };
                self.include(pattern, has_glob(pattern), at, frames)
            }
            ("server_name", Some(site)) => {
                for (name, line) in &words[1..] {
                    self.add_name(site, name, Location { file: at.file.clone(), line: *line });
                }
                Ok(())
            }
            ("listen", Some(site)) => {
                let args: Vec<&str> = words[1..].iter().map(|(w, _)| w.as_str()).collect();
                if let Some(address) = args.first() {
                    let tls = address_port(address) == Some(443)
                        || args.iter().any(|a| matches!(*a, "ssl" | "quic"));
                    let site = &mut self.sites[site];
                    site.tls |= tls;
                    site.listen.push(args.join(" "));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn apache_file(
        &mut self,
        path: &Path,
        text: &str,
        frames: &mut Vec<Frame>,
    ) -> Result<(), DiscoverError> {
        let at = |line| Location { file: path.to_path_buf(), line };
        let syntax =
            |line, message: String| DiscoverError::new(at(line), ErrorKind::Syntax, message);
        let depth = frames.len();
        for (line, text) in logical_lines(text) {
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if let Some(rest) = text.strip_prefix("</") {
                let Some(name) = rest.strip_suffix('>').map(str::trim) else {
                    return Err(syntax(line, format!("{text} lacks its closing \">\"")));
                };
                match frames.last() {
                    Some(open) if frames.len() > depth && open.name.eq_ignore_ascii_case(name) => {
                        frames.pop();
                    }
                    Some(open) if frames.len() > depth => {
                        return Err(syntax(
                            line,
                            format!(
                                "expected </{}> (opened on line {}) but found </{name}>",
                                open.name, open.line
                            ),
                        ));
                    }
                    _ => {
                        return Err(syntax(line, format!("</{name}> without a matching <{name}>")));
                    }
                }
            } else if let Some(rest) = text.strip_prefix('<') {
                let Some(inner) = rest.strip_suffix('>') else {
                    return Err(syntax(line, format!("{text} lacks its closing \">\"")));
                };
                let words = conf_words(inner);
                let Some(name) = words.first() else {
                    return Err(syntax(line, "an empty section \"<>\"".into()));
                };
                let site = name.eq_ignore_ascii_case("VirtualHost").then(|| {
                    let mut site = Site::new(SiteKind::VirtualHost, at(line));
                    site.listen = words[1..].to_vec();
                    site.tls = site.listen.iter().any(|a| address_port(a) == Some(443));
                    self.sites.push(site);
                    self.sites.len() - 1
                });
                frames.push(Frame { name: name.clone(), line, site });
            } else {
                self.apache_directive(&conf_words(text), at(line), frames)?;
            }
        }
        if let Some(open) = frames.get(depth) {
            return Err(syntax(
                open.line,
                format!("<{}> is not closed by </{}> in this file", open.name, open.name),
            ));
        }
        Ok(())
    }

    fn apache_directive(
        &mut self,
        words: &[String],
        at: Location,
        frames: &mut Vec<Frame>,
    ) -> Result<(), DiscoverError> {
        let Some(name) = words.first() else {
            return Ok(());
        };
        let vhost = frames.iter().rev().find_map(|f| f.site);
        let args = &words[1..];
        match name.to_ascii_lowercase().as_str() {
            "serverroot" => {
                if let Some(root) = args.first() {
                    self.base = self.main_dir.join(root);
                }
            }
            directive @ ("include" | "includeoptional") => {
                let optional = directive == "includeoptional";
                for pattern in args {
                    self.include(pattern, optional, at.clone(), frames)?;
                }
            }
            "servername" => {
                let Some(value) = args.first() else {
                    return Ok(());
                };
                let site = match vhost {
                    Some(site) => site,
                    None => *self.main_site.get_or_insert_with(|| {
                        self.sites.push(Site::new(SiteKind::MainServer, at.clone()));
                        self.sites.len() - 1
                    }),
                };
                self.add_name(site, &server_name_host(value), at);
            }
            "serveralias" => match vhost {
                Some(site) => {
                    for alias in args {
                        self.add_name(site, alias, at.clone());
                    }
                }
                None => self.warnings.push(format!(
                    "{at}: ServerAlias outside a <VirtualHost> has no effect; it was passed over"
                )),
            },
            "sslengine" => {
                if let Some(site) = vhost
                    && args.first().is_some_and(|a| a.eq_ignore_ascii_case("on"))
                {
                    self.sites[site].tls = true;
                }
            }
            "listen" if vhost.is_none() && !args.is_empty() => {
                self.main_listen.push(args.join(" "));
            }
            _ => {}
        }
        Ok(())
    }
}

/// What one written name stands for (the names to check), or why it cannot be certified.
fn expand_name(server: WebServer, written: &str) -> Result<Vec<String>, String> {
    let lower = written.trim_end_matches('.').to_ascii_lowercase();
    if written.is_empty() {
        return Err(
            "the empty name matches requests without a Host header; it is not a host name".into()
        );
    }
    if written == "_" {
        return Err("\"_\" is the conventional catch-all placeholder, not a host name".into());
    }
    if server == WebServer::Nginx && written.starts_with('~') {
        return Err("a regular expression, not a name; list the names it should match".into());
    }
    if written.contains('$') {
        return Err("contains a variable, which has a value only per request".into());
    }
    if written.ends_with('*') {
        return Err(
            "a trailing wildcard stands for any top-level domain; no certificate can name it"
                .into(),
        );
    }
    if written.contains('?') {
        return Err("\"?\" matches any one character; no certificate can name it".into());
    }
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Err("a localhost name; no CA certifies it".into());
    }
    if server == WebServer::Nginx
        && let Some(base) = written.strip_prefix('.')
    {
        return Ok(vec![base.to_string(), format!("*.{base}")]);
    }
    Ok(vec![written.to_string()])
}

/// The host of an Apache `ServerName`: without `scheme://` and without `:port`.
fn server_name_host(value: &str) -> String {
    let host = value.split_once("://").map_or(value, |(_, rest)| rest);
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip).to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => host.to_string(),
    }
}

/// The port of an nginx `listen` address or an Apache address (`443`, `*:443`,
/// `[::]:443`, `127.0.0.1`): `None` for a UNIX socket or an address without a port other
/// than nginx's bare port number.
fn address_port(address: &str) -> Option<u16> {
    let address = address.split_whitespace().next()?;
    if address.starts_with("unix:") {
        return None;
    }
    if address.bytes().all(|b| b.is_ascii_digit()) {
        return address.parse().ok();
    }
    let after_host = match address.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(_, after)| after)?,
        None => address.rsplit_once(':').map_or("", |(_, port)| port),
    };
    after_host.trim_start_matches(':').parse().ok()
}

/// An nginx token and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String, usize),
    Semicolon(usize),
    Open(usize),
    Close(usize),
}

/// Splits nginx configuration into tokens as nginx does: `#` starts a comment where a token
/// could start; a token starting with `"` or `'` runs to the matching quote; elsewhere
/// whitespace, `;` and `{` end a word (but `${` does not) and `\` makes the next character
/// part of it. Escapes `\"`, `\'`, `\\`, `\t`, `\r` and `\n` are then replaced.
fn tokenize(text: &str) -> Result<Vec<Token>, (usize, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => while chars.next_if(|c| *c != '\n').is_some() {},
            ';' => {
                out.push(Token::Semicolon(line));
                chars.next();
            }
            '{' => {
                out.push(Token::Open(line));
                chars.next();
            }
            '}' => {
                out.push(Token::Close(line));
                chars.next();
            }
            '"' | '\'' => {
                let start = line;
                chars.next();
                let mut raw = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err((start, format!("the {c}quoted string{c} is not closed")));
                        }
                        Some('\\') => {
                            raw.push('\\');
                            if let Some(next) = chars.next() {
                                line += usize::from(next == '\n');
                                raw.push(next);
                            }
                        }
                        Some(q) if q == c => break,
                        Some(other) => {
                            line += usize::from(other == '\n');
                            raw.push(other);
                        }
                    }
                }
                out.push(Token::Word(unescape(&raw), start));
            }
            _ => {
                let start = line;
                let mut raw = String::new();
                let mut variable = false;
                while let Some(&ch) = chars.peek() {
                    if ch == '{' && variable {
                        variable = false;
                        raw.push(ch);
                        chars.next();
                        continue;
                    }
                    if ch.is_whitespace() || ch == ';' || ch == '{' {
                        break;
                    }
                    variable = ch == '$';
                    raw.push(ch);
                    chars.next();
                    if ch == '\\'
                        && let Some(next) = chars.next()
                    {
                        line += usize::from(next == '\n');
                        raw.push(next);
                    }
                }
                out.push(Token::Word(unescape(&raw), start));
            }
        }
    }
    Ok(out)
}

/// Replaces nginx's escapes; any other backslash stays.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(q @ ('"' | '\'' | '\\')) => out.push(q),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Apache's logical lines, each with the line it starts on: a line ending in a single `\`
/// continues on the next (the backslash and line break removed), comments included.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(body) if !body.ends_with('\\') => {
                joined.push_str(body);
                pending = Some((start, joined));
            }
            _ => {
                joined.push_str(raw);
                out.push((start, joined));
            }
        }
    }
    out.extend(pending);
    out
}

/// Apache's words on a directive line: separated by whitespace, or quoted with `"` or `'`
/// (a backslash before the quote character keeps it in the word).
fn conf_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return out;
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\\' && chars.peek() == Some(&first) {
                    word.push(first);
                    chars.next();
                } else if c == first {
                    break;
                } else {
                    word.push(c);
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        out.push(word);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const PUBLIC: RequestRules = RequestRules { public_ca: true };

    /// A resolver over an in-memory tree: exact paths, and globs matched on the last
    /// component only.
    fn tree(
        files: &[(&str, &str)],
    ) -> impl FnMut(&IncludeRequest<'_>) -> Result<Vec<Source>, String> {
        let files: BTreeMap<PathBuf, String> =
            files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect();
        move |req| {
            let found: Vec<Source> = if req.glob {
                let dir = req.pattern.parent().unwrap_or(Path::new("/"));
                let last = req.pattern.file_name().and_then(|n| n.to_str()).unwrap_or("");
                files
                    .iter()
                    .filter(|(p, _)| {
                        p.parent() == Some(dir)
                            && p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| glob_match(last, n))
                    })
                    .map(|(p, t)| Source { path: p.clone(), text: t.clone() })
                    .collect()
            } else {
                files
                    .get(&req.pattern)
                    .map(|t| Source { path: req.pattern.clone(), text: t.clone() })
                    .into_iter()
                    .collect()
            };
            if found.is_empty() && !req.optional {
                return Err(format!("{} does not exist", req.pattern.display()));
            }
            Ok(found)
        }
    }

    fn src(path: &str, text: &str) -> Source {
        Source { path: PathBuf::from(path), text: text.to_string() }
    }

    fn nginx_text(text: &str) -> Discovery {
        nginx(src("/etc/nginx/nginx.conf", text), &PUBLIC, tree(&[])).unwrap()
    }

    fn apache_text(text: &str) -> Discovery {
        apache(src("/etc/apache2/apache2.conf", text), &PUBLIC, tree(&[])).unwrap()
    }

    fn names(site: &Site) -> Vec<String> {
        site.names.iter().map(|n| n.identifier.to_string()).collect()
    }

    fn skipped(site: &Site) -> Vec<(String, String)> {
        site.skipped.iter().map(|s| (s.name.clone(), s.reason.clone())).collect()
    }

    #[test]
    fn nginx_collects_names_from_every_server_name_directive_of_a_block() {
        let found = nginx_text(
            "http {\n  server {\n    listen 443 ssl;\n    server_name a.example.com\n        B.Example.COM.;\n    server_name c.example.com a.example.com;\n  }\n}\n",
        );
        assert_eq!(found.sites.len(), 1);
        let site = &found.sites[0];
        assert_eq!(names(site), ["a.example.com", "b.example.com", "c.example.com"]);
        assert_eq!(site.at.line, 2);
        assert_eq!(site.names[1].at.line, 5, "a name keeps the line it is written on");
        assert_eq!(site.names[2].at.line, 6);
        assert_eq!(site.listen, ["443 ssl"]);
        assert!(site.tls);
    }

    #[test]
    fn nginx_ignores_comments_and_reads_quoted_and_escaped_words() {
        let found = nginx_text(
            "# server { server_name commented.example.com; }\nhttp { # a comment { ; }\n  server {\n    server_name \"quoted.example.com\" 'single.example.com' esc\\aped.example.com; # x.example.com\n    return 200 \"a } b ; c # d\";\n    set $x \"${host}{\";\n  }\n}\n",
        );
        assert_eq!(found.sites.len(), 1);
        let site = &found.sites[0];
        assert_eq!(names(site), ["quoted.example.com", "single.example.com"], "{:?}", site.skipped);
        assert_eq!(site.skipped.len(), 1, "the backslash stays in esc\\aped: {:?}", site.skipped);
        assert_eq!(site.skipped[0].name, "esc\\aped.example.com");
    }

    #[test]
    fn nginx_reads_server_blocks_only_inside_http_not_in_nested_or_other_blocks() {
        let found = nginx_text(
            "events { }\nstream { server { listen 12345; server_name stream.example.com; } }\nhttp {\n  upstream app { server 127.0.0.1:8080; }\n  map $host $x { default 0; }\n  server {\n    listen 80;\n    server_name web.example.com;\n    location / { if ($x) { return 404; } }\n    location /api { proxy_pass http://app; }\n  }\n}\nmail { server { server_name mail.example.com; } }\n",
        );
        assert_eq!(found.sites.len(), 1);
        assert_eq!(names(&found.sites[0]), ["web.example.com"]);
        assert!(!found.sites[0].tls);
    }

    #[test]
    fn nginx_leading_dot_stands_for_the_name_and_its_wildcard() {
        let found = nginx_text("http { server { server_name .example.com *.other.example; } }");
        let site = &found.sites[0];
        assert_eq!(names(site), ["example.com", "*.example.com", "*.other.example"]);
        assert_eq!(site.names[1].written, ".example.com");
    }

    #[test]
    fn nginx_skips_names_that_cannot_be_certified_with_the_reason() {
        let found = nginx_text(
            "http {\n server {\n  listen 80 default_server;\n  server_name _ \"\" localhost ~^(?<user>.+)\\.example\\.net$ $host www.* app.localhost bad_name.example.com ok.example.com;\n }\n}\n",
        );
        let site = &found.sites[0];
        assert_eq!(names(site), ["ok.example.com"]);
        let reasons: BTreeMap<String, String> = skipped(site).into_iter().collect();
        let reason = |n: &str| {
            reasons.get(n).cloned().unwrap_or_else(|| panic!("{n} not skipped: {reasons:?}"))
        };
        assert!(reason("_").contains("catch-all"));
        assert!(reason("").contains("Host header"));
        assert!(reason("localhost").contains("localhost"));
        assert!(reason("app.localhost").contains("localhost"));
        assert!(reason("~^(?<user>.+)\\.example\\.net$").contains("regular expression"));
        assert!(reason("$host").contains("variable"));
        assert!(reason("www.*").contains("trailing wildcard"));
        assert!(reason("bad_name.example.com").contains("'_' is not allowed"));
        assert!(site.skipped.iter().all(|s| s.at.line == 4));
    }

    #[test]
    fn single_label_names_are_skipped_for_a_public_ca_only() {
        let text = "http { server { server_name intranet; } }";
        let public = nginx_text(text);
        assert!(public.sites[0].names.is_empty());
        assert!(public.sites[0].skipped[0].reason.contains("single-label"));
        let private = nginx(
            src("/etc/nginx/nginx.conf", text),
            &RequestRules { public_ca: false },
            tree(&[]),
        )
        .unwrap();
        assert_eq!(names(&private.sites[0]), ["intranet"]);
    }

    #[test]
    fn nginx_follows_includes_relative_to_the_configuration_directory_in_place() {
        let main = src(
            "/etc/nginx/nginx.conf",
            "include modules-enabled/*.conf;\nhttp {\n  include conf.d/*.conf;\n  include /etc/nginx/sites-enabled/*;\n}\n",
        );
        let found = nginx(
            main,
            &PUBLIC,
            tree(&[
                (
                    "/etc/nginx/conf.d/a.conf",
                    "server { server_name a.example.com; include snippets/listen.conf; }",
                ),
                ("/etc/nginx/conf.d/b.conf", "server {\n server_name b.example.com;\n}"),
                ("/etc/nginx/conf.d/.hidden.conf", "server { server_name hidden.example.com; }"),
                (
                    "/etc/nginx/snippets/listen.conf",
                    "listen [::]:443 ssl;\nserver_name c.example.com;",
                ),
                (
                    "/etc/nginx/sites-enabled/default",
                    "server { listen 80 default_server; server_name _; }",
                ),
            ]),
        )
        .unwrap();
        let all: Vec<String> = found.identifiers().iter().map(ToString::to_string).collect();
        assert_eq!(all, ["a.example.com", "c.example.com", "b.example.com"]);
        assert!(found.sites[0].tls);
        assert_eq!(found.sites[0].listen, ["[::]:443 ssl"]);
        assert_eq!(
            found.sites[0].names[1].at,
            Location { file: "/etc/nginx/snippets/listen.conf".into(), line: 2 }
        );
        assert_eq!(found.sites[2].at.file, PathBuf::from("/etc/nginx/sites-enabled/default"));
        assert_eq!(found.sites[2].skipped[0].name, "_");
        assert_eq!(found.files.len(), 5);
    }

    #[test]
    fn nginx_reports_a_missing_include_and_passes_it_the_right_flags() {
        let mut seen = Vec::new();
        let err = nginx(
            src("/etc/nginx/nginx.conf", "http {\n include mime.types;\n}"),
            &PUBLIC,
            |req: &IncludeRequest<'_>| {
                seen.push((req.pattern.clone(), req.glob, req.optional, req.directory_contents));
                Err("No such file or directory".to_string())
            },
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Include);
        assert_eq!(
            err.to_string(),
            "/etc/nginx/nginx.conf:2: include mime.types: No such file or directory"
        );
        assert_eq!(seen, [(PathBuf::from("/etc/nginx/mime.types"), false, false, false)]);
    }

    #[test]
    fn an_include_loop_is_an_error_naming_the_chain() {
        let err = nginx(
            src("/etc/nginx/nginx.conf", "http { include a.conf; }"),
            &PUBLIC,
            tree(&[
                ("/etc/nginx/a.conf", "include b.conf;"),
                ("/etc/nginx/b.conf", "\ninclude a.conf;"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::IncludeLoop);
        assert_eq!(err.at, Location { file: "/etc/nginx/b.conf".into(), line: 2 });
        assert!(
            err.message.contains(
                "/etc/nginx/a.conf includes /etc/nginx/b.conf includes /etc/nginx/a.conf"
            ),
            "{err}"
        );
    }

    #[test]
    fn includes_nesting_too_deep_are_refused() {
        let mut n = 0;
        let err = nginx(src("/c/0", "include next;"), &PUBLIC, |_: &IncludeRequest<'_>| {
            n += 1;
            Ok(vec![src(&format!("/c/{n}"), "include next;")])
        })
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooDeep);
    }

    #[test]
    fn nginx_syntax_errors_name_the_line() {
        let cases = [
            ("http {\n server {\n", 2, "\"server\" block is not closed"),
            ("http { }\n}\n", 2, "unexpected \"}\""),
            ("http {\n server_name \"open;\n}\n", 2, "not closed"),
            ("http { server { server_name a.example.com } }", 1, "unexpected \"}\""),
            ("\n;", 2, "unexpected \";\""),
            ("http { listen 80", 1, "not ended by \";\""),
        ];
        for (text, line, message) in cases {
            let err = nginx(src("/n.conf", text), &PUBLIC, tree(&[])).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Syntax, "{text:?}");
            assert_eq!(err.at.line, line, "{text:?}: {err}");
            assert!(err.message.contains(message), "{text:?}: {err}");
        }
    }

    #[test]
    fn nginx_a_block_in_an_included_file_must_close_there() {
        let err = nginx(
            src("/etc/nginx/nginx.conf", "http { include open.conf; }"),
            &PUBLIC,
            tree(&[("/etc/nginx/open.conf", "}")]),
        )
        .unwrap_err();
        assert_eq!(err.at.file, PathBuf::from("/etc/nginx/open.conf"));
    }

    #[test]
    fn apache_reads_virtual_hosts_case_insensitively_with_continuations() {
        let found = apache_text(
            "# ServerName commented.example.com \\\n  ServerName continued-comment.example.com\n<virtualhost *:443 [::]:443>\n    servername https://www.example.com:443\n    SERVERALIAS example.com \\\n        *.cdn.example.com \\\n        \"quoted.example.com\"\n    SSLEngine On\n    <IfModule mod_ssl.c>\n        ServerAlias inner.example.com\n    </ifmodule>\n</VirtualHost>\n<VirtualHost 192.0.2.1:80>\n  ServerName plain.example.com:80\n</virtualhost>\n",
        );
        assert_eq!(found.sites.len(), 2, "{:?}", found.sites);
        let tls = &found.sites[0];
        assert_eq!(tls.kind, SiteKind::VirtualHost);
        assert_eq!(tls.at.line, 3);
        assert_eq!(tls.listen, ["*:443", "[::]:443"]);
        assert!(tls.tls);
        assert_eq!(
            names(tls),
            [
                "www.example.com",
                "example.com",
                "*.cdn.example.com",
                "quoted.example.com",
                "inner.example.com"
            ]
        );
        assert_eq!(tls.names[1].at.line, 5, "a continued line keeps the line it starts on");
        let plain = &found.sites[1];
        assert_eq!(names(plain), ["plain.example.com"]);
        assert!(!plain.tls);
    }

    #[test]
    fn apache_skips_wildcards_it_cannot_certify() {
        let found = apache_text(
            "<VirtualHost *:80>\nServerName ${SITE}\nServerAlias www.example.* w?w.example.com *.example.com localhost\n</VirtualHost>\n",
        );
        let site = &found.sites[0];
        assert_eq!(names(site), ["*.example.com"]);
        let reasons: BTreeMap<String, String> = skipped(site).into_iter().collect();
        assert!(reasons["${SITE}"].contains("variable"));
        assert!(reasons["www.example.*"].contains("trailing wildcard"));
        assert!(reasons["w?w.example.com"].contains("any one character"));
        assert!(reasons["localhost"].contains("localhost"));
    }

    #[test]
    fn apache_main_server_name_is_a_site_with_the_global_listen_ports() {
        let found = apache_text("Listen 80\nListen 443\nServerName host.example.com\n");
        assert_eq!(found.sites.len(), 1);
        assert_eq!(found.sites[0].kind, SiteKind::MainServer);
        assert_eq!(found.sites[0].listen, ["80", "443"]);
        assert!(found.sites[0].tls);
        assert_eq!(names(&found.sites[0]), ["host.example.com"]);
    }

    #[test]
    fn apache_includes_resolve_against_server_root_and_optional_ones_may_match_nothing() {
        let mut seen = Vec::new();
        let mut inner = tree(&[
            ("/etc/apache2/ports.conf", "Listen 80"),
            (
                "/srv/httpd/sites/a.conf",
                "<VirtualHost *:80>\n  Include /srv/httpd/common.conf\n</VirtualHost>",
            ),
            ("/srv/httpd/common.conf", "ServerName a.example.com"),
        ]);
        let found = apache(
            src(
                "/etc/apache2/apache2.conf",
                "Include ports.conf\nServerRoot \"/srv/httpd\"\nIncludeOptional none/*.conf\nincludeoptional sites/*.conf\n",
            ),
            &PUBLIC,
            |req: &IncludeRequest<'_>| {
                seen.push((req.pattern.clone(), req.optional, req.directory_contents));
                inner(req)
            },
        )
        .unwrap();
        assert_eq!(names(&found.sites[0]), ["a.example.com"]);
        assert_eq!(found.sites[0].names[0].at.file, PathBuf::from("/srv/httpd/common.conf"));
        assert_eq!(seen[0], (PathBuf::from("/etc/apache2/ports.conf"), false, true));
        assert_eq!(seen[1], (PathBuf::from("/srv/httpd/none/*.conf"), true, true));
        let err =
            apache(src("/a/httpd.conf", "Include missing/*.conf"), &PUBLIC, tree(&[])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Include);
    }

    #[test]
    fn apache_unbalanced_sections_are_syntax_errors() {
        for (text, line) in [
            ("<VirtualHost *:80>\nServerName a.example.com\n", 1),
            ("<VirtualHost *:80>\n</Directory>\n", 2),
            ("</VirtualHost>\n", 1),
            ("<VirtualHost *:80\n", 1),
        ] {
            let err = apache(src("/a.conf", text), &PUBLIC, tree(&[])).unwrap_err();
            assert_eq!((err.kind, err.at.line), (ErrorKind::Syntax, line), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_variable_include_is_a_warning_not_an_error() {
        let found = apache_text("Include ${APACHE_CONFDIR}/extra.conf\n");
        assert_eq!(found.warnings.len(), 1);
        assert!(
            found.warnings[0].starts_with("/etc/apache2/apache2.conf:1: "),
            "{:?}",
            found.warnings
        );
    }

    #[test]
    fn glob_matching_follows_shell_rules() {
        assert!(glob_match("*.conf", "a.conf"));
        assert!(!glob_match("*.conf", "a.conf.bak"));
        assert!(!glob_match("*.conf", ".hidden.conf"));
        assert!(glob_match(".*.conf", ".hidden.conf"));
        assert!(glob_match("*", "default"));
        assert!(glob_match("site?.conf", "site1.conf"));
        assert!(!glob_match("site?.conf", "site10.conf"));
        assert!(glob_match("[a-c]*", "beta"));
        assert!(!glob_match("[!a-c]*", "beta"));
        assert!(glob_match("[]]x", "]x"));
        assert!(glob_match("a\\*", "a*"));
        assert!(!glob_match("a\\*", "ab"));
        assert!(glob_match("[x", "[x"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(has_glob("sites-enabled/*") && !has_glob("mime.types"));
    }

    #[test]
    fn patterns_select_names_as_domains_in_a_challenge_spec_do() {
        let id = |s: &str| Identifier::parse(s).unwrap();
        assert!(matches_pattern("www.example.com", &id("www.example.com")));
        assert!(matches_pattern("*.example.com", &id("www.example.com")));
        assert!(matches_pattern("*.Example.com.", &id("*.example.com")));
        assert!(!matches_pattern("*.example.com", &id("example.com")));
        assert!(!matches_pattern("example.com", &id("www.example.com")));
    }

    #[test]
    fn ports_are_read_from_listen_and_virtual_host_addresses() {
        assert_eq!(address_port("443"), Some(443));
        assert_eq!(address_port("*:443"), Some(443));
        assert_eq!(address_port("[::]:8443 ssl"), Some(8443));
        assert_eq!(address_port("127.0.0.1"), None);
        assert_eq!(address_port("[::1]"), None);
        assert_eq!(address_port("unix:/run/nginx.sock"), None);
        assert_eq!(server_name_host("https://www.example.com:8443"), "www.example.com");
        assert_eq!(server_name_host("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(server_name_host("example.com"), "example.com");
    }
}
