//! Command-line arguments (clap), before any validation beyond their syntax.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// certhub orders, validates, renews and deploys TLS certificates from ACME certificate
/// authorities (Let's Encrypt and any RFC 8555 CA).
///
/// Client commands work on a local data directory (accounts, certificates, keys; secrets
/// encrypted at rest under DATA_DIR/master.key).
///
/// Exit codes: 0 success; 1 failure; 2 usage error; 3 invalid input or configuration (an
/// identifier, a challenge spec, a file, a CA whose TLS certificate does not verify); 4 the CA
/// refused (retrying will not help); 5 a transient failure
/// (network, rate limit, timeout, the certificate locked by another process: retrying later may
/// help); 6 no such account or certificate; 141 the output's reader went away (`| head`).
#[derive(Debug, Parser)]
#[command(
    name = "certhub",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CERTHUB_COMMIT"), ")"),
    max_term_width = 100
)]
pub struct Cli {
    /// The data directory [default: $XDG_DATA_HOME/certhub, ~/.local/share/certhub, or
    /// /var/lib/certhub as root].
    #[arg(long, global = true, env = "CERTHUB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Keep the store in PostgreSQL instead of the data directory's SQLite file, e.g.
    /// postgres://certhub@db.internal/certhub. The master key still comes from
    /// CERTHUB_MASTER_KEY or the data directory: hubs that share a database need the same key.
    #[arg(
        long,
        global = true,
        env = "CERTHUB_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,

    /// Seconds one request to a CA may take before it counts as unanswered (it is then
    /// tried again, like a reset connection, a cut-off answer, a 5xx or a 429: up to three
    /// times, after 1, 2 and 4 s or the CA's Retry-After).
    #[arg(long, global = true, env = "CERTHUB_ACME_TIMEOUT", default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub acme_timeout: u64,

    /// Log detail: -v for info, -vv for debug (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// How log lines are written to standard error: text for people, or json, one object a
    /// line with the certificate's name, the order's URL and the other facts as fields.
    #[arg(
        long,
        global = true,
        env = "CERTHUB_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    /// DNS resolver for dns-01 checks (finding a zone's name servers, following CNAMEs)
    /// [default: the system's].
    #[arg(long, global = true, env = "CERTHUB_DNS_RESOLVER", value_name = "HOST:PORT")]
    pub dns_resolver: Option<SocketAddr>,

    /// Port on which to query a zone's authoritative name servers in dns-01 checks.
    #[arg(
        long,
        global = true,
        env = "CERTHUB_DNS_PORT",
        default_value_t = 53,
        value_name = "PORT"
    )]
    pub dns_port: u16,

    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text each, for people.
    Text,
    /// One JSON object each, for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// ACME accounts: one per CA (and per purpose).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Managed certificates: what to order, how to validate it, and the issued results.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Renew what is due (for cron or a timer), or the named certificates now.
    Renew(Renew),
    /// Deployment tasks: files, PKCS#12, commands and webhooks run after each request.
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// Run the hub: the REST API under /api/v1 (first start prints a one-time setup token).
    Serve(Box<Serve>),
    /// The audit log of the hub.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Agents: join this machine to a hub and run it as one (`join`, `run`), or, on the hub,
    /// make join tokens and manage the agents that joined.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Stored credentials: named secrets (a TSIG key, a callback's signing key) that challenge
    /// SPECs name with credential=NAME, read from standard input, a file or the environment,
    /// never from the command line.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// DNS providers whose APIs answer dns-01 (dns-01:provider=NAME,credential=C).
    #[command(subcommand)]
    Dns(DnsCommand),
    /// The hub's users, changed straight in its database on the hub's machine: for recovery
    /// (a forgotten admin password, a last admin disabled) and scripts. Passwords are read
    /// from the terminal, or the first line of standard input.
    #[command(subcommand)]
    User(UserCommand),
    /// Find the names a web server answers to (nginx server blocks, Apache virtual hosts,
    /// includes followed) and create a managed certificate for them.
    Discover(Discover),
}

#[derive(Debug, Args)]
#[command(after_help = "The renewal settings (--policy, --check-interval, --renewal-workers, \
--expiry-warning-days) are starting values: a change made in the web UI (Settings) or with \
PATCH /api/v1/settings is kept in the database and wins over the flag, also after a restart.")]
pub struct Serve {
    /// Where to listen.
    #[arg(
        long,
        env = "CERTHUB_LISTEN",
        default_value = "127.0.0.1:8440",
        value_name = "ADDR:PORT"
    )]
    pub listen: SocketAddr,
    /// The longest wait between looks for certificates that are due (renewing them like
    /// `renew --due`); the hub also looks when one falls due or is changed through it.
    #[arg(long, env = "CERTHUB_CHECK_INTERVAL", default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub check_interval: u64,
    /// Serve HTTPS with this certificate chain (PEM, leaf first)...
    #[arg(long, value_name = "PEM", requires = "tls_key", conflicts_with = "tls_managed")]
    pub tls_cert: Option<PathBuf>,
    /// ...and this private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with the latest certificate of this managed certificate.
    #[arg(long, value_name = "NAME")]
    pub tls_managed: Option<String>,
    /// The renewal policy of certificates without their own: a share of the lifetime (75%)
    /// or days before expiry (30d). A renewal window offered by the CA (ARI) comes first.
    #[arg(long, env = "CERTHUB_POLICY", default_value = "75%", value_name = "POLICY", value_parser = policy_arg)]
    pub policy: String,
    /// A CA's rate limits, kept to by the renewal service (see `certhub renew --help`).
    #[arg(long, value_name = "DIRECTORY=LIMITS", value_parser = rate_limit_arg)]
    pub rate_limit: Vec<String>,
    /// How many certificates the renewal service renews at once.
    #[arg(long, env = "CERTHUB_RENEWAL_WORKERS", default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub renewal_workers: u16,
    /// Tell the notification channels about a certificate this many days before it expires,
    /// when nothing renews it (imported, or its renewals fail).
    #[arg(long, env = "CERTHUB_EXPIRY_WARNING_DAYS", default_value_t = 30, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub expiry_warning_days: u32,
    /// Port on which the CA fetches http-01, for Test (80; only a test CA differs).
    #[arg(long, default_value_t = 80, value_name = "PORT")]
    pub probe_http_port: u16,
    /// Port on which the CA connects for tls-alpn-01, for Test (443; only a test CA differs).
    #[arg(long, default_value_t = 443, value_name = "PORT")]
    pub probe_tls_port: u16,
    /// Connections the hub keeps open at once; past that, a new one is closed at once.
    #[arg(long, env = "CERTHUB_MAX_CONNECTIONS", default_value_t = 4096, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Connections one client address (an IPv6 client's /64) may keep open at once.
    #[arg(long, env = "CERTHUB_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,
    /// Seconds a client may take to send a request's headers (or a TLS handshake), and a
    /// connection may sit idle between requests, before it is closed.
    #[arg(long, env = "CERTHUB_HEADER_TIMEOUT", default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Serve agents here: mutual TLS only, with certificates from the hub's own agent
    /// authority (e.g. 0.0.0.0:8444). Agents join through the hub's URL (--listen) and then
    /// connect here.
    #[arg(long, env = "CERTHUB_AGENT_LISTEN", value_name = "ADDR:PORT")]
    pub agent_listen: Option<SocketAddr>,
    /// The URL agents are told to connect to [default: https://HOST:PORT, HOST as the
    /// joining agent reached the hub, PORT that of --agent-listen].
    #[arg(long, env = "CERTHUB_AGENT_URL", value_name = "URL", requires = "agent_listen")]
    pub agent_url: Option<String>,
    /// Let Prometheus at these addresses read /metrics without a token (ADDRESS or
    /// ADDRESS/PREFIX, repeatable, e.g. 10.0.0.0/8). Anyone else needs an API token with the
    /// `metrics` scope.
    #[arg(long = "metrics-allow", value_name = "ADDRESS[/PREFIX]")]
    pub metrics_allow: Vec<certhub_server::ScraperRange>,
    /// The hub's URL as browsers reach it, e.g. https://hub.example:8440 (the OpenID
    /// provider sends them back to it; an https:// URL makes cookies Secure even behind a
    /// proxy that ends TLS) [default: the address it listens on].
    #[arg(long, env = "CERTHUB_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub oidc: Oidc,
}

/// Sign-in through an OpenID provider (`certhub serve`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Sign-in through an OpenID provider")]
pub struct Oidc {
    /// Let people sign in through this OpenID provider (its issuer URL), besides local users
    /// with passwords. Register the hub there as a client whose redirect URI is the hub's URL
    /// (--public-url) followed by /login/oidc/callback.
    #[arg(
        long = "oidc-issuer",
        env = "CERTHUB_OIDC_ISSUER",
        value_name = "URL",
        requires = "client_id"
    )]
    pub issuer: Option<String>,
    /// The hub's client id at the OpenID provider.
    #[arg(
        long = "oidc-client-id",
        env = "CERTHUB_OIDC_CLIENT_ID",
        value_name = "ID",
        requires = "issuer"
    )]
    pub client_id: Option<String>,
    /// A file holding the client's secret, for a confidential client (or the secret in
    /// CERTHUB_OIDC_CLIENT_SECRET). Without one the hub is a public client, kept safe by PKCE.
    #[arg(
        long = "oidc-client-secret-file",
        env = "CERTHUB_OIDC_CLIENT_SECRET_FILE",
        value_name = "FILE",
        requires = "issuer"
    )]
    pub client_secret_file: Option<PathBuf>,
    /// ROLE=VALUE: a user whose role claim holds VALUE is given ROLE (admin, operator or
    /// viewer) at each sign-in, e.g. admin=certhub-admins; repeatable, the highest wins.
    #[arg(long = "oidc-role", value_name = "ROLE=VALUE", requires = "issuer")]
    pub role: Vec<String>,
    /// The role of a user whose claim holds none of the --oidc-role values; without one,
    /// such a user cannot sign in.
    #[arg(long = "oidc-default-role", value_name = "ROLE", requires = "issuer")]
    pub default_role: Option<String>,
    /// The claim (a string or a list of strings) whose values --oidc-role maps to roles.
    #[arg(long = "oidc-role-claim", default_value = "groups", value_name = "CLAIM")]
    pub role_claim: String,
    /// The claim that names the user on the hub (when absent: email, once the provider has
    /// verified it, then sub).
    #[arg(
        long = "oidc-username-claim",
        default_value = "preferred_username",
        value_name = "CLAIM"
    )]
    pub username_claim: String,
    /// A scope to ask for besides openid, profile and email, e.g. groups (repeatable): some
    /// providers give the role claim only with its own scope.
    #[arg(long = "oidc-scope", value_name = "SCOPE")]
    pub scope: Vec<String>,
    /// What the sign-in button calls the provider ("Sign in with NAME").
    #[arg(long = "oidc-name", default_value = "single sign-on", value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Join tokens: one-time, expiring credentials with which an agent joins (on the hub).
    #[command(subcommand)]
    Token(AgentTokenCommand),
    /// Join this machine to a hub: makes the agent's key here (it never leaves the machine)
    /// and has the hub sign its client certificate.
    Join(AgentJoin),
    /// Run the agent: one outbound connection to the hub, which pushes the certificates
    /// assigned to this machine; each is deployed with its tasks, once, and reported.
    Run(AgentRun),
    /// The agents that joined, with their connection and what they deployed (on the hub).
    List(JsonFlag),
    /// One agent, with each certificate it deploys (on the hub).
    Show(AgentName),
    /// Replace an agent's labels (on the hub).
    Label(AgentLabel),
    /// Remove an agent: its identity is refused at once and from then on (on the hub).
    Remove(AgentName),
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Keep a new credential; each field is read from --from-file, the environment
    /// (CERTHUB_CREDENTIAL_FIELD, e.g. CERTHUB_CREDENTIAL_KEY_SECRET) or standard input.
    Add(CredentialAdd),
    /// The stored credentials: kind, fields given, and the certificates that use them.
    List(JsonFlag),
    /// One credential; secret fields are never shown.
    Show(CredentialName),
    /// Replace a credential's fields (read as for add): every certificate that uses it
    /// orders with the new ones from its next order on.
    Rotate(CredentialRotate),
    /// Remove a credential; refused while a certificate uses it.
    Remove(CredentialName),
    /// The kinds of credential and the fields each needs.
    Kinds(JsonFlag),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// The users, their roles, and who is disabled.
    List(JsonFlag),
    /// Add a user.
    Add(UserRole),
    /// Set a user's password.
    Password(UserName),
    /// Change a user's role (the last enabled admin stays one).
    Role(UserRole),
    /// Disable a user: they cannot sign in, and their sessions and tokens stop at once.
    Disable(UserName),
    /// Enable a disabled user again.
    Enable(UserName),
    /// Remove a user with their sessions and tokens (not the last enabled admin).
    Remove(UserName),
}

#[derive(Debug, Args)]
pub struct UserName {
    /// The user's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct UserRole {
    /// The user's name.
    pub name: String,
    /// admin, operator or viewer.
    #[arg(long, value_name = "ROLE")]
    pub role: String,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// The DNS providers certhub speaks to, with the fields of the credential each takes
    /// (keep one with `certhub credential add NAME --kind PROVIDER`).
    Providers(JsonFlag),
}

/// Where a credential's fields come from.
#[derive(Debug, Args)]
pub struct CredentialInput {
    /// Read field FIELD from the file PATH (its trailing newline dropped); repeat for
    /// several.
    #[arg(long = "from-file", value_name = "FIELD=PATH", value_parser = field_path_arg)]
    pub from_file: Vec<(String, PathBuf)>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Fields not given with --from-file or the environment are read from standard input: asked for one by one on a terminal (secrets without echo), or else as FIELD=VALUE lines (a kind with one required field also takes its value alone).

Examples:
  certhub credential add dns-primary --kind tsig --from-file key-secret=/etc/bind/acme.secret
  printf 'key-name=acme\nkey-secret=%s\n' \"$SECRET\" | certhub credential add dns-primary --kind tsig
  certhub cert add web -d '*.example.com' --account le \\
      --challenge dns-01:rfc2136=ns1.example.com:53,credential=dns-primary"
)]
pub struct CredentialAdd {
    /// The credential's name, as SPECs name it (credential=NAME).
    pub name: String,
    /// Its kind (`certhub credential kinds` lists them with their fields).
    #[arg(long)]
    pub kind: String,
    #[command(flatten)]
    pub input: CredentialInput,
}

#[derive(Debug, Args)]
pub struct CredentialRotate {
    /// The credential's name.
    pub name: String,
    #[command(flatten)]
    pub input: CredentialInput,
}

#[derive(Debug, Args)]
pub struct CredentialName {
    /// The credential's name.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `FIELD=PATH`.
fn field_path_arg(s: &str) -> Result<(String, PathBuf), String> {
    let (field, path) = s
        .split_once('=')
        .filter(|(f, p)| !f.trim().is_empty() && !p.is_empty())
        .ok_or_else(|| format!("{s:?} is not FIELD=PATH, e.g. key-secret=/etc/bind/acme.secret"))?;
    Ok((field.trim().to_string(), PathBuf::from(path)))
}

#[derive(Debug, Subcommand)]
pub enum AgentTokenCommand {
    /// Make a join token, shown once.
    Create(AgentTokenCreate),
}

#[derive(Debug, Args)]
#[command(after_help = "Example:
  certhub agent token create --label role=web --expires 2h
  # then on the target machine:
  certhub agent join https://hub.example:8440 --token certhub-join_…")]
pub struct AgentTokenCreate {
    /// A label the joining agent gets, KEY=VALUE (repeat for several); certificates target
    /// agents by label with --target label:KEY=VALUE.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// How long the token can be used: 30m, 24h, 7d (at most 30d).
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = duration_arg)]
    pub expires: std::time::Duration,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The agent keeps its identity in the data directory (--data-dir): agent.json, agent-key.pem (mode 0600), agent-cert.pem and agent-ca.pem."
)]
pub struct AgentJoin {
    /// The hub's URL, as its users reach it, e.g. https://hub.example:8440.
    pub hub_url: String,
    /// The join token from `certhub agent token create` (or Agents > Add).
    #[arg(long, env = "CERTHUB_JOIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The agent's name on the hub [default: this machine's host name].
    #[arg(long)]
    pub name: Option<String>,
    /// Trust these certificates (PEM) for the hub's URL besides the system's: the CA that
    /// signed the hub's certificate, or a self-signed hub certificate itself.
    #[arg(long, value_name = "PEM")]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Without --allow-commands or --allow-command, a command: task is refused; without --allow-dir, so is every task that writes files. A refused task is reported to the hub with the reason, and nothing of that deployment runs.

Example:
  certhub agent run --allow-dir /etc/ssl/web --allow-command 'systemctl reload nginx'"
)]
pub struct AgentRun {
    /// Run any command: task the hub sends.
    #[arg(long)]
    pub allow_commands: bool,
    /// Run this command when a task asks for it, written exactly so (repeat for several).
    #[arg(long = "allow-command", value_name = "COMMAND")]
    pub allow_command: Vec<String>,
    /// Write files only under this directory (repeat for several).
    #[arg(long = "allow-dir", value_name = "DIR")]
    pub allow_dirs: Vec<PathBuf>,
    /// Read this web server's configuration (nginx or apache, with its main file after `=`
    /// when not in the usual place): the names it serves are shown on the hub, and after each
    /// deployment its TLS server blocks for the certificate's names are checked for the
    /// serial they serve, unless a task names endpoints with ;verify=HOST:PORT.
    #[arg(long = "discover", value_name = "SERVER[=CONFIG]", value_parser = web_server_arg)]
    pub discover: Vec<(DiscoverServer, Option<PathBuf>)>,
    /// Renew the agent's own client certificate (valid for a year) when it expires within
    /// this many days: a new key made here, the hub's certificate for it.
    #[arg(long, default_value_t = 30, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub renew_identity_days: u32,
}

/// `nginx`, `apache`, or either with `=CONFIG`.
fn web_server_arg(s: &str) -> Result<(DiscoverServer, Option<PathBuf>), String> {
    let (server, config) = match s.split_once('=') {
        Some((server, config)) => (server, Some(PathBuf::from(config))),
        None => (s, None),
    };
    let server = DiscoverServer::from_str(server.trim(), true)
        .map_err(|_| format!("{server:?}: write nginx or apache, optionally =CONFIG"))?;
    Ok((server, config))
}

#[derive(Debug, Args)]
pub struct AgentName {
    /// The agent's name.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AgentLabel {
    /// The agent's name.
    pub name: String,
    /// Its labels from now on, KEY=VALUE each (none: no labels).
    #[arg(value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// A duration as `90s`, `30m`, `24h` or `7d`.
fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 =
        n.parse().map_err(|_| format!("{s:?}: write a number and a unit: 30m, 24h, 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit is s, m, h or d (30m, 24h, 7d)")),
    };
    Ok(std::time::Duration::from_secs(n * secs))
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no entry was changed or removed (each entry hashes the previous one), and
    /// with --anchor that the log was not rolled back since the anchor was made.
    Verify(AuditVerify),
    /// Record where the log stands now, outside the database: a line naming its newest entry
    /// (printed, appended to --out FILE, or sent to a notification channel), which
    /// `audit verify --anchor FILE` checks the log against. Run it from cron to keep a trail.
    Anchor(AuditAnchor),
}

#[derive(Debug, Args)]
pub struct AuditVerify {
    /// A file of anchors made by `certhub audit anchor` (one a line): the log must still
    /// hold the entry each one names.
    #[arg(long, value_name = "FILE")]
    pub anchor: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditAnchor {
    /// Append the anchor to FILE (created if missing) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also send it to this notification channel, where the database cannot reach it.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DiscoverServer {
    /// nginx: server_name in server blocks.
    Nginx,
    /// Apache httpd: ServerName and ServerAlias in virtual hosts.
    Apache,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  certhub discover nginx
  certhub discover apache --config /etc/httpd/conf/httpd.conf --tls-only --json
  certhub discover nginx --match '*.example.com' --create web --account le \\
      --challenge http-01:webroot=/var/www/html --deploy 'command:systemctl reload nginx'")]
pub struct Discover {
    /// The web server.
    pub server: DiscoverServer,
    /// Its main configuration file [default: /etc/nginx/nginx.conf; /etc/apache2/apache2.conf
    /// or /etc/httpd/conf/httpd.conf].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Only sites that serve TLS (ssl on a listen, port 443, SSLEngine on).
    #[arg(long)]
    pub tls_only: bool,
    /// Only names matching PATTERN (a name, or *.example.com for names below it).
    #[arg(long = "match", value_name = "PATTERN", value_delimiter = ',')]
    pub patterns: Vec<String>,
    /// Print JSON.
    #[arg(long, conflicts_with = "create")]
    pub json: bool,
    /// Create a managed certificate NAME for the names found (then `certhub cert request
    /// NAME`).
    #[arg(long, value_name = "NAME", requires = "account")]
    pub create: Option<String>,
    /// With --create: the account to order with.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,
    /// With --create: how to validate, as for `certhub cert add`.
    #[arg(long = "challenge", value_name = "SPEC")]
    pub challenges: Vec<String>,
    /// With --create: what to do after each request, as for `certhub cert add`.
    #[arg(long = "deploy", value_name = "SPEC")]
    pub deploy: Vec<String>,
    /// With --create: the key type, as for `certhub cert add`.
    #[arg(long, default_value = "ec-p256", value_name = "TYPE")]
    pub key_type: String,
    /// With --create: keep the same key when the certificate is renewed.
    #[arg(long)]
    pub reuse_key: bool,
    /// Accept single-label names (for a private CA).
    #[arg(long)]
    pub allow_single_label: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Add tasks to a certificate (run after its existing ones).
    Add(DeployAdd),
    /// List a certificate's tasks and how each last ran.
    List(CertShow),
    /// Remove a task.
    Remove(DeployRemove),
    /// Run a certificate's tasks now, for its latest certificate.
    Run(DeployRun),
}

#[derive(Debug, Args)]
pub struct DeployAdd {
    /// The certificate name.
    pub name: String,
    /// What to do; several run in order. SPEC is one of
    ///   files:dir=DIR[,cert=cert.pem][,chain=chain.pem][,fullchain=fullchain.pem]
    ///         [,key=privkey.pem][,owner=USER][,group=GROUP][,mode=0644][,key-mode=0600]
    ///   pkcs12:file=PATH,password=PASSWORD[,legacy=true][,owner=USER][,group=GROUP][,mode=0600]
    ///   command:SHELL COMMAND          (e.g. command:systemctl reload nginx)
    ///   webhook:url=URL,secret=SECRET  (a signed JSON POST)
    ///   sftp:host=HOST[:PORT],user=USER,credential=NAME,dir=DIR,known-hosts=PATH
    ///         (or fingerprint=SHA256:…)[,cert=…][,chain=…][,fullchain=…][,key=…][,mode=…]
    ///   ssh:host=HOST[:PORT],user=USER,credential=NAME,known-hosts=PATH,command=… (last)
    ///         (NAME: a private key kept with `certhub credential add NAME --kind ssh`;
    ///         the host key must be the one pinned)
    ///   nginx:server=NAME[,config=PATH][,dir=DIR][,test=CMD][,reload=CMD]
    ///   apache:vhost=NAME[,config=PATH][,dir=DIR][,test=CMD][,reload=CMD]
    ///         (point the TLS site answering to NAME at the new files, test, reload, and
    ///         put the previous configuration back if either fails)
    /// each optionally followed by ;trigger=on-success|on-failure|always (default
    /// on-success), ;timeout=SECONDS (default 60) and ;name=NAME (default KIND-N).
    /// Files are written atomically (an empty name such as key= leaves that file out).
    /// Commands get CERTHUB_CERT_NAME, CERTHUB_EVENT, CERTHUB_ERROR, CERTHUB_SERIAL,
    /// CERTHUB_NOT_BEFORE, CERTHUB_NOT_AFTER, CERTHUB_DOMAINS, CERTHUB_CERT_PATH,
    /// CERTHUB_CHAIN_PATH, CERTHUB_FULLCHAIN_PATH, CERTHUB_KEY_PATH and CERTHUB_PKCS12_PATH.
    #[arg(value_name = "SPEC", required = true, verbatim_doc_comment)]
    pub specs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeployRemove {
    /// The certificate name.
    pub name: String,
    /// The task name (see `certhub deploy list`).
    pub task: String,
}

#[derive(Debug, Args)]
pub struct DeployRun {
    /// The certificate name.
    pub name: String,
    /// Say what each task would do, and check what can be checked, without doing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Only the tasks that have not delivered the latest certificate yet.
    #[arg(long)]
    pub pending: bool,
}

#[derive(Debug, Args)]
pub struct Renew {
    /// Certificates to renew now, whether due or not.
    #[arg(conflicts_with = "due", required_unless_present = "due")]
    pub names: Vec<String>,
    /// Renew every certificate that is due: inside the CA's renewal window (ARI) when the CA
    /// offers one, else by --policy. Safe to run often and concurrently with itself.
    #[arg(long)]
    pub due: bool,
    /// When a certificate is due without a CA window: a share of its lifetime passed (75%)
    /// or days before expiry (30d; never before half the lifetime).
    #[arg(long, default_value = "75%", value_name = "POLICY")]
    pub policy: String,
    /// How many to renew at once.
    #[arg(short, long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Give up on one certificate after this many seconds.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub timeout: u64,
    /// A CA's rate limits, kept to when renewing what is due: DIRECTORY_URL=LIMITS, LIMITS
    /// being orders=COUNT/WINDOW (new orders per account), domain=COUNT/WINDOW
    /// (certificates per registered domain) and ari-exempt (ARI renewals do not count),
    /// comma-separated, or none. Repeat for several CAs. Let's Encrypt's directories default
    /// to its published limits, orders=300/3h,domain=50/7d,ari-exempt; other CAs to none.
    #[arg(long, value_name = "DIRECTORY=LIMITS", value_parser = rate_limit_arg)]
    pub rate_limit: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Register an account with a CA (or adopt the one the CA already has for the key).
    Add(AccountAdd),
    /// List accounts.
    List(JsonFlag),
    /// Show an account as stored and as the CA has it.
    Show(AccountShow),
    /// Replace the account key with a new one (RFC 8555 key rollover).
    Rollover(AccountRollover),
    /// Change the contact email (or remove it with --no-email).
    Update(AccountUpdate),
    /// Deactivate the account at the CA, for good.
    Deactivate(AccountDeactivate),
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AccountAdd {
    /// A name for the account, used by `cert add --account`.
    pub name: String,
    /// The CA's ACME directory URL, or one of: letsencrypt, letsencrypt-staging.
    #[arg(long, value_name = "URL")]
    pub directory: String,
    /// PEM file of the roots to trust for this CA's HTTPS instead of the system's.
    #[arg(long, value_name = "PEM")]
    pub ca_bundle: Option<PathBuf>,
    /// Contact email for the CA's notices (without one, the CA cannot warn you).
    #[arg(long, value_name = "ADDR")]
    pub email: Option<String>,
    /// Agree to the CA's terms of service (required to register).
    #[arg(long)]
    pub agree_tos: bool,
    /// External Account Binding key identifier, from the CA.
    #[arg(long, value_name = "KID", requires = "eab_hmac_key")]
    pub eab_kid: Option<String>,
    /// External Account Binding HMAC key (base64url, as the CA issued it).
    #[arg(
        long,
        value_name = "KEY",
        env = "CERTHUB_EAB_HMAC_KEY",
        hide_env_values = true,
        requires = "eab_kid"
    )]
    pub eab_hmac_key: Option<String>,
    /// External Account Binding MAC algorithm.
    #[arg(long, value_enum, default_value_t = EabAlg::Hs256)]
    pub eab_algorithm: EabAlg,
    /// Account key type: ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096.
    #[arg(long, default_value = "ec-p256", value_name = "TYPE")]
    pub key_type: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EabAlg {
    Hs256,
    Hs384,
    Hs512,
}

#[derive(Debug, Args)]
pub struct AccountShow {
    /// The account name.
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AccountRollover {
    /// The account name.
    pub name: String,
    /// Type of the new key [default: the current key's type].
    #[arg(long, value_name = "TYPE")]
    pub key_type: Option<String>,
}

#[derive(Debug, Args)]
pub struct AccountUpdate {
    /// The account name.
    pub name: String,
    /// The new contact email.
    #[arg(
        long,
        value_name = "ADDR",
        conflicts_with = "no_email",
        required_unless_present = "no_email"
    )]
    pub email: Option<String>,
    /// Remove the contact email.
    #[arg(long)]
    pub no_email: bool,
}

#[derive(Debug, Args)]
pub struct AccountDeactivate {
    /// The account name.
    pub name: String,
    /// Confirm: a deactivated account can never be used again.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Add a managed certificate (nothing is ordered until `cert request`).
    Add(Box<CertAdd>),
    /// Order, validate and download certificates; several run at once with --jobs.
    Request(CertRequest),
    /// List managed certificates.
    List(JsonFlag),
    /// Show a managed certificate and its current issued certificate.
    Show(CertShow),
    /// Write the certificate, chain and key as PEM files or one PKCS#12 file.
    Export(CertExport),
    /// Revoke the current certificate.
    Revoke(CertRevoke),
    /// What a request would do, step by step, without doing any of it.
    Preview(CertPreview),
    /// Check every challenge configuration without ordering: each identifier's probe is
    /// presented and fetched the way the CA would, then removed.
    Test(CertTest),
    /// What happened to a certificate: ordered, validated, issued, failed (with the reason),
    /// revoked.
    History(CertShow),
    /// Change how a certificate is renewed: its renewal policy, fallback account, or the
    /// account and challenges it is ordered with.
    Set(Box<CertSet>),
    /// Import a certificate obtained elsewhere (an OV/EV certificate, say): its expiry is
    /// watched and its deployment tasks run; ACME renews it only with --account. Importing
    /// into an existing name adds the new certificate as its latest.
    Import(Box<CertImport>),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  certhub cert set web --renew-at 30d --fallback-account zerossl --fallback-after 2
  certhub cert set web --renew-at default --fallback-account none
  certhub cert set bought --account le --challenge http-01:webroot=/var/www/html")]
pub struct CertSet {
    /// The certificate name.
    pub name: String,
    /// Order with this account from now on.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,
    /// Replace the challenge configuration (repeat for several), as for `certhub cert add`.
    #[arg(long = "challenge", value_name = "SPEC")]
    pub challenges: Vec<String>,
    /// When to renew without a CA window: 75%, 30d, or `default` for renew --policy.
    #[arg(long, value_name = "POLICY")]
    pub renew_at: Option<String>,
    /// The fallback account, or `none`.
    #[arg(long, value_name = "ACCOUNT")]
    pub fallback_account: Option<String>,
    /// Failed requests in a row before the fallback account is used.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub fallback_after: Option<u16>,
    /// Deploy it on these agents from now on, replacing its targets: agent:NAME or
    /// label:KEY=VALUE (repeat for several); `none` to deploy it on the hub again.
    #[arg(long = "target", value_name = "TARGET")]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  certhub cert import shop --cert shop-fullchain.pem --key shop.key \\
      --deploy files:dir=/etc/ssl/shop --deploy 'command:systemctl reload nginx'
  CERTHUB_IMPORT_PASSWORD=… certhub cert import exchange --pkcs12 exchange.pfx")]
pub struct CertImport {
    /// A name for the certificate.
    pub name: String,
    /// The certificate as PEM, leaf first, optionally followed by its chain (and the key).
    #[arg(long, value_name = "PEM", required_unless_present = "pkcs12")]
    pub cert: Option<PathBuf>,
    /// The private key as PEM (PKCS#8, SEC1 or PKCS#1), when --cert does not hold it.
    /// Without a key, deployment tasks that need one fail.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// A PKCS#12 (.pfx/.p12) file with the key and the chain.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cert", "key"])]
    pub pkcs12: Option<PathBuf>,
    /// The PKCS#12 file's password.
    #[arg(long, env = "CERTHUB_IMPORT_PASSWORD", hide_env_values = true, requires = "pkcs12")]
    pub password: Option<String>,
    /// Have ACME renew it with this account (needs --challenge too).
    #[arg(long, value_name = "ACCOUNT", requires = "challenges")]
    pub account: Option<String>,
    /// With --account: how to validate, as for `certhub cert add`.
    #[arg(long = "challenge", value_name = "SPEC", requires = "account")]
    pub challenges: Vec<String>,
    /// What to do with it, now and after each renewal, as for `certhub cert add`.
    #[arg(long = "deploy", value_name = "SPEC")]
    pub deploy: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CertAdd {
    /// A name for the certificate.
    pub name: String,
    /// The account to order with.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: String,
    /// DNS names (repeat, or separate with commas); `*.example.com` for a wildcard.
    #[arg(short = 'd', long = "domain", value_name = "DOMAIN", value_delimiter = ',')]
    pub domains: Vec<String>,
    /// IP addresses (RFC 8738).
    #[arg(long = "ip", value_name = "ADDR", value_delimiter = ',')]
    pub ips: Vec<IpAddr>,
    /// Key type: ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096.
    #[arg(long, default_value = "ec-p256", value_name = "TYPE")]
    pub key_type: String,
    /// Keep the same private key when the certificate is renewed.
    #[arg(long)]
    pub reuse_key: bool,
    /// Order for an existing key: a CSR (PEM or DER) whose CN and SANs are the identifiers.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_type", "reuse_key"])]
    pub csr: Option<PathBuf>,
    /// An ACME profile the CA advertises (e.g. classic, shortlived).
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Prefer the chain whose top certificate was issued by this common name.
    #[arg(long, value_name = "ISSUER-CN")]
    pub preferred_chain: Option<String>,
    /// How to validate; repeat for several. SPEC is one of
    ///   http-01:listen=HOST:PORT     http-01:webroot=DIR     tls-alpn-01:listen=HOST:PORT
    ///   dns-01:exec=PATH             dns-01:callback=URL,secret=SECRET
    ///   dns-01:rfc2136=HOST:PORT,key-name=NAME,key-secret=BASE64[,algorithm=hmac-sha256]
    ///   dns-01:rfc2136=HOST:PORT,credential=NAME   dns-01:callback=URL,credential=NAME
    ///   dns-01:channel=NAME   (secrets kept once with `certhub credential add`)
    ///   dns-01:provider=NAME,credential=C[,zone=ZONE]   (a DNS provider's API: Cloudflare,
    ///   Route 53, Azure, Google Cloud DNS, … `certhub dns providers` lists them)
    /// each optionally followed by ;domains=PATTERN,... (which identifiers it serves; `*.x.com`
    /// matches names below x.com) and, for dns-01, ;propagation-timeout=SECONDS and
    /// ;propagation=check|wait:SECONDS|resolver:HOST:PORT (how certhub knows the record is
    /// there: every authoritative server, the default; a wait without lookups; a resolver).
    /// Each identifier uses the first spec that matches it and suits it.
    #[arg(long = "challenge", value_name = "SPEC", required = true, verbatim_doc_comment)]
    pub challenges: Vec<String>,
    /// Allow single-label names (SRVDEVAPP01), which only a private CA can validate.
    #[arg(long)]
    pub allow_single_label: bool,
    /// What to do after each request; repeat for several (they run in order). See
    /// `certhub deploy add --help` for SPEC.
    #[arg(long = "deploy", value_name = "SPEC")]
    pub deploy: Vec<String>,
    /// Deploy it on agents instead of the hub: agent:NAME or label:KEY=VALUE (repeat for
    /// several); its deployment tasks then run on each of them.
    #[arg(long = "target", value_name = "TARGET")]
    pub targets: Vec<String>,
    /// For the names this agent's web servers serve (`certhub agent run --discover`), deployed
    /// on that agent (with -d, the names given are added).
    #[arg(long, value_name = "AGENT", conflicts_with = "csr")]
    pub from_agent: Option<String>,
    /// Where the key is made and kept: hub (sealed in the store, sent to the targets over
    /// their mutual-TLS connection) or agent (on the one --target agent:NAME, which sends only
    /// a certificate request: the key never leaves it; its http-01 and tls-alpn-01
    /// challenges are answered by that agent, dns-01 by the hub).
    #[arg(long, value_name = "hub|agent", default_value = "hub")]
    pub key_on: String,
    #[command(flatten)]
    pub renewal: RenewalSettings,
}

/// How a certificate is renewed, beyond the CA's own window.
#[derive(Debug, Clone, Default, Args)]
pub struct RenewalSettings {
    /// When to renew if the CA offers no renewal window: a share of the lifetime (75%) or
    /// days before expiry (30d, never before half the lifetime) [default: renew --policy,
    /// itself 75%].
    #[arg(long, value_name = "POLICY")]
    pub renew_at: Option<String>,
    /// An account (usually at another CA) to order with after --fallback-after failed
    /// requests in a row.
    #[arg(long, value_name = "ACCOUNT")]
    pub fallback_account: Option<String>,
    /// Failed requests in a row before the fallback account is used [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub fallback_after: Option<u16>,
}

#[derive(Debug, Args)]
pub struct CertRequest {
    /// Certificates to request.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// How many to request at once.
    #[arg(short, long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Give up on one certificate after this many seconds.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct CertShow {
    /// The certificate name.
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CertTest {
    /// The certificate name.
    pub name: String,
    /// Port on which the CA fetches http-01 (80; only a test CA differs).
    #[arg(long, default_value_t = 80, value_name = "PORT")]
    pub http_port: u16,
    /// Port on which the CA connects for tls-alpn-01 (443; only a test CA differs).
    #[arg(long, default_value_t = 443, value_name = "PORT")]
    pub tls_port: u16,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CertPreview {
    /// The certificate name.
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The renewal policy the plan assumes: 75% of the lifetime, or days before expiry (30d).
    #[arg(long, default_value = "75%", value_name = "POLICY")]
    pub policy: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Pem,
    Pkcs12,
}

#[derive(Debug, Args)]
pub struct CertExport {
    /// The certificate name.
    pub name: String,
    /// pem: cert.pem, chain.pem, fullchain.pem, privkey.pem; pkcs12: NAME.p12.
    #[arg(long, value_enum, default_value_t = ExportFormat::Pem)]
    pub format: ExportFormat,
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// PKCS#12 password.
    #[arg(long, env = "CERTHUB_PKCS12_PASSWORD", hide_env_values = true, default_value = "")]
    pub password: String,
    /// PKCS#12 with legacy 3DES/SHA-1 (for old Windows and Java) instead of AES-256/SHA-256.
    #[arg(long)]
    pub legacy: bool,
}

#[derive(Debug, Args)]
pub struct CertRevoke {
    /// The certificate name.
    pub name: String,
    /// unspecified, key-compromise, affiliation-changed, superseded,
    /// cessation-of-operation, certificate-hold or privilege-withdrawn.
    #[arg(long, value_name = "REASON")]
    pub reason: Option<String>,
    /// Sign the revocation with the certificate's own key instead of the account key.
    #[arg(long)]
    pub with_cert_key: bool,
}

/// A `--rate-limit` argument, checked when parsed.
fn rate_limit_arg(s: &str) -> Result<String, String> {
    certhub_engine::renew::parse_rate_limit(s).map(|_| s.to_string())
}

/// A renewal policy argument (75% or 30d), checked when parsed.
fn policy_arg(s: &str) -> Result<String, String> {
    certhub_engine::cert::parse_policy(s).map(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    /// clap's own checks of the whole command line: no two arguments share a name, and every
    /// `requires` names an argument that exists.
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
