//! The OpenAPI 3.1 document of `/api/v1`, built from one table of the routes (a test checks
//! that every route in it is served, and that nothing else is).

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::api::{self, Items};
use crate::ops;

/// Every route: method, path, summary, and the scope it needs (`None`: no token).
pub const ROUTES: &[(&str, &str, &str, Option<&str>)] = &[
    ("get", "/api/v1/health", "Liveness, and whether the hub still needs its setup", None),
    (
        "get",
        "/api/v1/ready",
        "Whether this hub can serve: its database answers, with the schema it knows (503 if not)",
        None,
    ),
    ("get", "/api/v1/openapi.json", "This document", None),
    ("post", "/api/v1/setup", "Create the first admin with the one-time setup token", None),
    ("post", "/api/v1/tokens", "Sign in with name and password; returns an API token once", None),
    (
        "get",
        "/api/v1/tokens",
        "API tokens: the caller's own, or every one for an admin",
        Some("cert:read"),
    ),
    (
        "delete",
        "/api/v1/tokens/{id}",
        "Revoke a token (one's own, or any for an admin)",
        Some("cert:read"),
    ),
    ("post", "/api/v1/users", "Add a user (admin)", Some("admin")),
    ("get", "/api/v1/users", "Users and their roles (admin)", Some("admin")),
    (
        "patch",
        "/api/v1/users/{name}",
        "Change a user's role, disable or enable them, or set their password; the last \
         enabled admin stays one (admin)",
        Some("admin"),
    ),
    (
        "delete",
        "/api/v1/users/{name}",
        "Remove a user with their sessions and tokens; not oneself, not the last admin (admin)",
        Some("admin"),
    ),
    (
        "put",
        "/api/v1/me/password",
        "Change one's own password, given the current one",
        Some("cert:read"),
    ),
    (
        "get",
        "/api/v1/certificates",
        "Managed certificates, paginated and filterable",
        Some("cert:read"),
    ),
    ("post", "/api/v1/certificates", "Add a managed certificate (admin)", Some("admin")),
    ("get", "/api/v1/certificates/{name}", "One managed certificate", Some("cert:read")),
    (
        "delete",
        "/api/v1/certificates/{name}",
        "Delete a managed certificate and its history (admin)",
        Some("admin"),
    ),
    (
        "patch",
        "/api/v1/certificates/{name}",
        "Change how a certificate is ordered and renewed: account, challenges, renew_at, \
         fallback_account, fallback_after (admin)",
        Some("admin"),
    ),
    (
        "get",
        "/api/v1/certificates/{name}/deployments",
        "A certificate's deployment tasks and their last outcomes (admin)",
        Some("admin"),
    ),
    (
        "post",
        "/api/v1/certificates/{name}/deployments",
        "Add deployment tasks: {\"specs\": [SPEC, …]} as for certhub deploy add (admin)",
        Some("admin"),
    ),
    (
        "delete",
        "/api/v1/certificates/{name}/deployments/{task}",
        "Remove a deployment task (admin)",
        Some("admin"),
    ),
    (
        "post",
        "/api/v1/certificates/import",
        "Import a certificate obtained elsewhere: cert_pem (and key_pem) or pkcs12_base64 with \
         password; account and challenges to have ACME renew it; deploy (admin)",
        Some("admin"),
    ),
    ("get", "/api/v1/settings", "The hub's renewal and notification settings", Some("cert:read")),
    (
        "patch",
        "/api/v1/settings",
        "Change the settings, kept across restarts: renewal_policy, check_interval_seconds, \
         expiry_warning_days, renewal_workers (admin)",
        Some("admin"),
    ),
    (
        "get",
        "/api/v1/certificates/{name}/challenges",
        "A certificate's challenge configurations (credentials left out) and the identifiers \
         each validates",
        Some("cert:read"),
    ),
    (
        "put",
        "/api/v1/certificates/{name}/challenges",
        "Replace the challenge configurations: {\"specs\": [SPEC, …]} as for certhub cert set \
         --challenge (admin)",
        Some("admin"),
    ),
    (
        "get",
        "/api/v1/certificates/{name}/history",
        "What happened to a certificate",
        Some("cert:read"),
    ),
    (
        "get",
        "/api/v1/certificates/{name}/pull",
        "The latest certificate and chain as PEM, with the key (cert:key), or as PKCS#12 \
         (its password in the X-Pkcs12-Password header)",
        Some("cert:read"),
    ),
    (
        "post",
        "/api/v1/certificates/{name}/request",
        "Request (or renew) now; answers 202 with a job to watch",
        Some("cert:request"),
    ),
    (
        "get",
        "/api/v1/certificates/{name}/preview",
        "What a request would do now (CA, validation, key, deployment, next renewal); nothing \
         is sent or written",
        Some("cert:read"),
    ),
    (
        "post",
        "/api/v1/certificates/{name}/test",
        "Probe each identifier as the CA would validate it, without ordering",
        Some("cert:request"),
    ),
    (
        "post",
        "/api/v1/certificates/{name}/revoke",
        "Revoke the latest issued certificate at its CA (admin); body {\"reason\": \"keyCompromise\"}",
        Some("admin"),
    ),
    (
        "get",
        "/api/v1/notifications",
        "Notification channels, without their secrets (admin)",
        Some("admin"),
    ),
    (
        "post",
        "/api/v1/notifications",
        "Add a notification channel: smtp, slack or callback, with the events it wants (admin)",
        Some("admin"),
    ),
    (
        "delete",
        "/api/v1/notifications/{name}",
        "Remove a notification channel (admin)",
        Some("admin"),
    ),
    (
        "post",
        "/api/v1/notifications/{name}/test",
        "Send a test notification through a channel (admin)",
        Some("admin"),
    ),
    (
        "get",
        "/api/v1/credentials",
        "Stored credentials: kind, fields (secrets never shown) and the certificates using each (admin)",
        Some("admin"),
    ),
    (
        "post",
        "/api/v1/credentials",
        "Keep a credential that challenge SPECs name with credential=NAME: tsig, callback or a DNS provider's kind (admin)",
        Some("admin"),
    ),
    (
        "get",
        "/api/v1/credentials/{name}",
        "One credential, secrets never shown (admin)",
        Some("admin"),
    ),
    (
        "put",
        "/api/v1/credentials/{name}",
        "Rotate a credential: new values for its fields, used by every certificate at its next order (admin)",
        Some("admin"),
    ),
    (
        "delete",
        "/api/v1/credentials/{name}",
        "Remove a credential no certificate uses (admin)",
        Some("admin"),
    ),
    ("get", "/api/v1/jobs/{id}", "A job's status and steps", Some("cert:read")),
    ("get", "/api/v1/accounts", "CA accounts", Some("cert:read")),
    ("post", "/api/v1/accounts", "Register a CA account (admin)", Some("admin")),
    (
        "post",
        "/api/v1/agent-tokens",
        "Make a one-time join token for an agent, with the labels it gets (admin)",
        Some("admin"),
    ),
    (
        "post",
        "/api/v1/agents/join",
        "Join an agent: its join token, name, CSR and facts; answers its client certificate, \
         the agent authority and the agent endpoint's URL",
        None,
    ),
    (
        "get",
        "/api/v1/agents",
        "Agents: labels, connection, and what each reported of its certificates",
        Some("cert:read"),
    ),
    ("get", "/api/v1/agents/{name}", "One agent", Some("cert:read")),
    (
        "delete",
        "/api/v1/agents/{name}",
        "Remove an agent: its identity is refused from then on (admin)",
        Some("admin"),
    ),
    ("put", "/api/v1/agents/{name}/labels", "Replace an agent's labels (admin)", Some("admin")),
    (
        "get",
        "/api/v1/certificates/{name}/targets",
        "Where a certificate is deployed, and what each agent reported",
        Some("cert:read"),
    ),
    (
        "put",
        "/api/v1/certificates/{name}/targets",
        "Replace where a certificate is deployed: agent:NAME or label:KEY=VALUE (admin)",
        Some("admin"),
    ),
    ("get", "/api/v1/audit", "The audit log, oldest first (admin)", Some("admin")),
    ("get", "/api/v1/audit/verify", "Check the audit log's hash chain (admin)", Some("admin")),
];

/// What an operation takes and answers beyond its route.
struct Shape {
    /// The JSON body's schema.
    body: Option<Value>,
    /// The query parameters, as an object schema.
    query: Option<Value>,
    /// An example body the server accepts.
    example: Option<Value>,
    /// The success status, and each content type it may have with its schema (none: no
    /// body).
    ok: (u16, Vec<(&'static str, Value)>),
    /// Error statuses besides those every operation of its kind has (see [`errors`]).
    more: &'static [u16],
}

/// An object with these properties, each of the given schema, all required.
fn object(props: &[(&str, Value)]) -> Value {
    let required: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
    let props: Map<String, Value> = props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    json!({ "type": "object", "required": required, "properties": props })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

/// `{"items": [ITEM, …]}`.
fn items(item: Value) -> Value {
    object(&[("items", json!({ "type": "array", "items": item }))])
}

fn job() -> Value {
    object(&[
        ("id", string()),
        ("kind", string()),
        ("target", string()),
        ("status", json!({ "enum": ["running", "succeeded", "failed", "interrupted"] })),
        ("steps", json!({ "type": "array", "items": { "type": "string" } })),
        ("result", nullable("string")),
        (
            "error",
            json!({ "anyOf": [{ "$ref": "#/components/schemas/Problem" }, { "type": "null" }] }),
        ),
        ("started", string()),
    ])
}

fn any_object() -> Value {
    json!({ "type": "object" })
}

/// How each operation looks (`None` for a route not described here); `schema` turns a body's
/// type into its JSON schema, `answer` an answer's.
fn shape(
    method: &str,
    path: &str,
    schema: &mut SchemaGenerator,
    answer: &mut SchemaGenerator,
) -> Option<Shape> {
    let json = |v: Value| vec![("application/json", v)];
    let body = |s: schemars::Schema| Some(s.to_value());
    let typed = |s: schemars::Schema| vec![("application/json", s.to_value())];
    let none = Shape { body: None, query: None, example: None, ok: (200, Vec::new()), more: &[] };
    Some(match (method, path) {
        ("get", "/api/v1/health") => Shape {
            ok: (
                200,
                json(object(&[
                    ("status", string()),
                    ("setup_required", json!({ "type": "boolean" })),
                ])),
            ),
            ..none
        },
        ("get", "/api/v1/openapi.json") => Shape { ok: (200, json(any_object())), ..none },
        ("get", "/api/v1/ready") => {
            Shape { ok: (200, json(object(&[("status", string())]))), more: &[503], ..none }
        }
        ("post", "/api/v1/setup") => Shape {
            body: body(schema.subschema_for::<api::SetupBody>()),
            example: Some(
                json!({ "token": "…", "username": "admin", "password": "a long enough password" }),
            ),
            ok: (201, json(object(&[("username", string()), ("role", string())]))),
            more: &[401, 409],
            ..none
        },
        ("post", "/api/v1/tokens") => Shape {
            body: body(schema.subschema_for::<api::TokenBody>()),
            example: Some(
                json!({ "username": "admin", "password": "a long enough password", "label": "web-01", "scopes": ["cert:read"], "expires_in_days": 90 }),
            ),
            ok: (
                201,
                json(object(&[
                    ("token", string()),
                    ("id", string()),
                    ("scopes", json!({ "type": "array" })),
                ])),
            ),
            more: &[401, 429],
            ..none
        },
        ("get", "/api/v1/tokens") => {
            Shape { ok: (200, typed(answer.subschema_for::<Items<ops::TokenView>>())), ..none }
        }
        ("delete", "/api/v1/tokens/{id}") => Shape { ok: (204, Vec::new()), ..none },
        ("post", "/api/v1/users") => Shape {
            body: body(schema.subschema_for::<api::UserBody>()),
            example: Some(
                json!({ "username": "ops", "password": "another long password", "role": "operator" }),
            ),
            ok: (201, json(object(&[("username", string()), ("role", string())]))),
            more: &[409],
            ..none
        },
        ("get", "/api/v1/users") => {
            Shape { ok: (200, typed(answer.subschema_for::<Items<ops::UserView>>())), ..none }
        }
        ("patch", "/api/v1/users/{name}") => Shape {
            body: body(schema.subschema_for::<api::UserPatch>()),
            example: Some(json!({ "disabled": true })),
            ok: (200, typed(answer.subschema_for::<ops::UserView>())),
            more: &[409],
            ..none
        },
        ("delete", "/api/v1/users/{name}") => Shape { ok: (204, Vec::new()), more: &[409], ..none },
        ("put", "/api/v1/me/password") => Shape {
            body: body(schema.subschema_for::<api::PasswordBody>()),
            example: Some(
                json!({ "current_password": "the one now in use", "new_password": "another long password" }),
            ),
            ok: (204, Vec::new()),
            ..none
        },
        ("get", "/api/v1/certificates") => Shape {
            query: Some(schemars::schema_for!(ops::ListQuery).to_value()),
            ok: (200, typed(answer.subschema_for::<ops::CertPage>())),
            ..none
        },
        ("post", "/api/v1/certificates") => Shape {
            body: body(schema.subschema_for::<certhub_engine::NewCertificate>()),
            example: Some(
                json!({ "name": "web", "account": "le", "domains": ["example.com"], "challenges": ["http-01:listen=0.0.0.0:80"] }),
            ),
            ok: (201, typed(answer.subschema_for::<ops::CertView>())),
            more: &[404, 409],
            ..none
        },
        ("get", "/api/v1/certificates/{name}") => {
            Shape { ok: (200, typed(answer.subschema_for::<ops::CertView>())), ..none }
        }
        ("delete", "/api/v1/certificates/{name}") => {
            Shape { ok: (204, Vec::new()), more: &[409], ..none }
        }
        ("patch", "/api/v1/certificates/{name}") => Shape {
            body: body(schema.subschema_for::<certhub_engine::CertChanges>()),
            example: Some(json!({ "renew_at": "30d" })),
            ok: (200, typed(answer.subschema_for::<ops::EditedView>())),
            ..none
        },
        ("get", "/api/v1/certificates/{name}/deployments") => {
            Shape { ok: (200, typed(answer.subschema_for::<Items<ops::DeployTaskView>>())), ..none }
        }
        ("post", "/api/v1/certificates/{name}/deployments") => Shape {
            body: body(schema.subschema_for::<api::Specs>()),
            example: Some(json!({ "specs": ["command:systemctl reload nginx"] })),
            ok: (201, typed(answer.subschema_for::<Items<ops::AddedTaskView>>())),
            more: &[409],
            ..none
        },
        ("delete", "/api/v1/certificates/{name}/deployments/{task}") => {
            Shape { ok: (204, Vec::new()), ..none }
        }
        ("post", "/api/v1/certificates/import") => Shape {
            body: body(schema.subschema_for::<certhub_engine::Import>()),
            example: Some(
                json!({ "name": "bought", "cert_pem": "-----BEGIN CERTIFICATE-----…", "key_pem": "-----BEGIN PRIVATE KEY-----…" }),
            ),
            ok: (201, typed(answer.subschema_for::<ops::ImportView>())),
            more: &[404, 409],
            ..none
        },
        ("get", "/api/v1/settings") => Shape { ok: (200, json(any_object())), ..none },
        ("patch", "/api/v1/settings") => Shape {
            body: body(schema.subschema_for::<certhub_engine::SettingsChanges>()),
            example: Some(json!({ "check_interval_seconds": 600 })),
            ok: (200, json(any_object())),
            ..none
        },
        // 409: stored configurations that no longer validate every identifier.
        ("get", "/api/v1/certificates/{name}/challenges") => Shape {
            ok: (200, typed(answer.subschema_for::<Items<ops::ChallengeView>>())),
            more: &[409],
            ..none
        },
        ("put", "/api/v1/certificates/{name}/challenges") => Shape {
            body: body(schema.subschema_for::<api::Specs>()),
            example: Some(json!({ "specs": ["http-01:listen=0.0.0.0:80"] })),
            ok: (200, typed(answer.subschema_for::<Items<ops::ChallengeView>>())),
            more: &[409],
            ..none
        },
        ("get", "/api/v1/certificates/{name}/history") => {
            Shape { ok: (200, typed(answer.subschema_for::<Items<ops::EventView>>())), ..none }
        }
        ("get", "/api/v1/certificates/{name}/pull") => Shape {
            query: Some(schemars::schema_for!(api::PullQuery).to_value()),
            ok: (
                200,
                vec![
                    ("application/x-pem-file", string()),
                    (
                        "application/x-pkcs12",
                        json!({ "type": "string", "contentEncoding": "binary" }),
                    ),
                ],
            ),
            more: &[409],
            ..none
        },
        ("post", "/api/v1/certificates/{name}/request") => Shape {
            ok: (202, json(object(&[("job", job()), ("status_url", string())]))),
            more: &[409, 503],
            ..none
        },
        ("get", "/api/v1/certificates/{name}/preview") => Shape {
            ok: (200, typed(answer.subschema_for::<certhub_engine::Preview>())),
            more: &[503],
            ..none
        },
        ("post", "/api/v1/certificates/{name}/test") => Shape {
            ok: (
                200,
                json(object(&[
                    ("works", json!({ "type": "boolean" })),
                    ("items", json!({ "type": "array" })),
                ])),
            ),
            more: &[503],
            ..none
        },
        ("post", "/api/v1/certificates/{name}/revoke") => Shape {
            body: body(schema.subschema_for::<api::RevokeBody>()),
            example: Some(json!({ "reason": "keyCompromise" })),
            ok: (
                200,
                json(object(&[("name", string()), ("serial", string()), ("state", string())])),
            ),
            more: &[409, 502, 503],
            ..none
        },
        ("get", "/api/v1/credentials") => Shape {
            ok: (
                200,
                typed(answer.subschema_for::<Items<certhub_engine::credentials::CredentialView>>()),
            ),
            ..none
        },
        ("post", "/api/v1/credentials") => Shape {
            body: body(schema.subschema_for::<ops::CredentialBody>()),
            example: Some(json!({
                "name": "dns-primary",
                "kind": "tsig",
                "fields": { "key-name": "acme", "key-secret": "c2VjcmV0IGtleQ==" },
            })),
            ok: (201, typed(answer.subschema_for::<certhub_engine::credentials::CredentialView>())),
            more: &[409],
            ..none
        },
        ("get", "/api/v1/credentials/{name}") => Shape {
            ok: (200, typed(answer.subschema_for::<certhub_engine::credentials::CredentialView>())),
            ..none
        },
        ("put", "/api/v1/credentials/{name}") => Shape {
            body: body(schema.subschema_for::<ops::RotateBody>()),
            example: Some(
                json!({ "fields": { "key-name": "acme", "key-secret": "bmV3IGtleQ==" } }),
            ),
            ok: (200, typed(answer.subschema_for::<certhub_engine::credentials::CredentialView>())),
            ..none
        },
        ("delete", "/api/v1/credentials/{name}") => {
            Shape { ok: (204, Vec::new()), more: &[409], ..none }
        }
        ("get", "/api/v1/jobs/{id}") => Shape { ok: (200, json(job())), ..none },
        ("get", "/api/v1/accounts") => {
            Shape { ok: (200, typed(answer.subschema_for::<Items<ops::AccountView>>())), ..none }
        }
        ("post", "/api/v1/accounts") => Shape {
            body: body(schema.subschema_for::<certhub_engine::NewAccount>()),
            example: Some(
                json!({ "name": "le", "directory": "letsencrypt", "email": "ops@example.com", "agree_tos": true }),
            ),
            ok: (201, json(any_object())),
            more: &[409, 502, 503],
            ..none
        },
        ("get", "/api/v1/notifications") => {
            Shape { ok: (200, typed(answer.subschema_for::<Items<ops::ChannelView>>())), ..none }
        }
        ("post", "/api/v1/notifications") => Shape {
            body: body(schema.subschema_for::<ops::ChannelBody>()),
            example: Some(
                json!({ "name": "ops", "kind": "slack", "config": { "url": "https://hooks.slack.com/services/T/B/X" } }),
            ),
            ok: (201, typed(answer.subschema_for::<ops::ChannelView>())),
            more: &[409],
            ..none
        },
        ("delete", "/api/v1/notifications/{name}") => Shape { ok: (204, Vec::new()), ..none },
        ("post", "/api/v1/notifications/{name}/test") => Shape {
            ok: (
                200,
                json(object(&[("delivered", json!({ "type": "boolean" })), ("detail", string())])),
            ),
            ..none
        },
        ("post", "/api/v1/agent-tokens") => Shape {
            body: body(schema.subschema_for::<api::JoinTokenBody>()),
            example: Some(json!({ "labels": ["role=web"], "expires_in_hours": 24 })),
            ok: (201, typed(answer.subschema_for::<ops::JoinTokenView>())),
            ..none
        },
        ("post", "/api/v1/agents/join") => {
            let strings = json!({ "type": "array", "items": { "type": "string" } });
            let facts = object(&[("hostname", string()), ("os", string()), ("version", string())]);
            Shape {
                body: Some(object(&[
                    ("token", string()),
                    ("name", string()),
                    ("csr_pem", string()),
                    ("facts", facts),
                ])),
                example: Some(json!({
                    "token": "certhub-join_…",
                    "name": "web-01",
                    "csr_pem": "-----BEGIN CERTIFICATE REQUEST-----…",
                    "facts": { "hostname": "web-01.example", "os": "Debian GNU/Linux 12", "version": "0.1.0" },
                })),
                ok: (
                    201,
                    json(object(&[
                        ("id", string()),
                        ("name", string()),
                        ("labels", strings),
                        ("cert_pem", string()),
                        ("ca_pem", string()),
                        ("agent_url", string()),
                    ])),
                ),
                more: &[403, 409, 503],
                ..none
            }
        }
        ("get", "/api/v1/agents") => {
            Shape { ok: (200, typed(answer.subschema_for::<Items<ops::AgentView>>())), ..none }
        }
        ("get", "/api/v1/agents/{name}") => {
            Shape { ok: (200, typed(answer.subschema_for::<ops::AgentView>())), ..none }
        }
        ("delete", "/api/v1/agents/{name}") => Shape { ok: (204, Vec::new()), ..none },
        ("put", "/api/v1/agents/{name}/labels") => Shape {
            body: body(schema.subschema_for::<api::LabelsBody>()),
            example: Some(json!({ "labels": ["role=web", "site=fra"] })),
            ok: (200, typed(answer.subschema_for::<ops::AgentView>())),
            ..none
        },
        ("get", "/api/v1/certificates/{name}/targets") => {
            Shape { ok: (200, typed(answer.subschema_for::<ops::TargetsView>())), ..none }
        }
        ("put", "/api/v1/certificates/{name}/targets") => Shape {
            body: body(schema.subschema_for::<api::TargetsBody>()),
            example: Some(json!({ "targets": ["label:role=web"] })),
            ok: (200, typed(answer.subschema_for::<ops::TargetsView>())),
            ..none
        },
        ("get", "/api/v1/audit") => Shape {
            query: Some(schemars::schema_for!(api::AuditQuery).to_value()),
            ok: (200, json(items(any_object()))),
            ..none
        },
        ("get", "/api/v1/audit/verify") => {
            Shape { ok: (200, json(object(&[("intact", json!({ "type": "boolean" }))]))), ..none }
        }
        _ => return None,
    })
}

/// The error statuses of an operation: 400 for one that takes input, 401 and 403 for one
/// that needs a token, 404 for one that names a resource, and its own.
fn errors(method: &str, path: &str, scope: Option<&str>, shape: &Shape) -> Vec<u16> {
    let mut out = Vec::new();
    // A change, or a key download (audited), refused while the database's disk is full.
    if method != "get" || path.ends_with("/pull") {
        out.push(507);
    }
    if shape.body.is_some() || shape.query.is_some() || path.contains('{') {
        out.push(400);
    }
    if scope.is_some() {
        out.extend([401, 403]);
    }
    if path.contains('{') {
        out.push(404);
    }
    out.extend(shape.more);
    out.sort_unstable();
    out.dedup();
    out
}

/// The document.
pub fn document() -> Value {
    // JSON Schema 2020-12 is OpenAPI 3.1's own dialect; named types go to the components.
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "#/components/schemas/".into();
    settings.meta_schema = None;
    // Bodies are described as the hub reads them, answers as it writes them (an `Option`
    // it always sends is required and nullable, one it leaves out when empty is optional).
    let mut answers = settings.clone().for_serialize().into_generator();
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    for (method, path, summary, scope) in ROUTES {
        // A route without a shape is caught by the test below; it is served as bare.
        let shape = shape(method, path, &mut generator, &mut answers).unwrap_or(Shape {
            body: None,
            query: None,
            example: None,
            ok: (200, Vec::new()),
            more: &[],
        });
        let mut responses = Map::new();
        let (ok, content) = &shape.ok;
        let mut answer = json!({ "description": "Done" });
        if !content.is_empty() {
            let media: Map<String, Value> = content
                .iter()
                .map(|(ctype, schema)| (ctype.to_string(), json!({ "schema": schema })))
                .collect();
            answer["content"] = Value::Object(media);
        }
        responses.insert(ok.to_string(), answer);
        for status in errors(method, path, *scope, &shape) {
            let reason = axum::http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            let mut answer = json!({
                "description": reason,
                "content": { "application/problem+json": {
                    "schema": { "$ref": "#/components/schemas/Problem" } } }
            });
            // Too many attempts, and a CA that asked to wait, say for how long.
            if matches!(status, 429 | 502 | 503) {
                answer["headers"] = json!({ "Retry-After": {
                    "description": "Seconds to wait before trying again, when known",
                    "schema": { "type": "integer", "minimum": 0 } } });
            }
            responses.insert(status.to_string(), answer);
        }
        let mut op = json!({ "summary": summary, "responses": responses });
        if let Some(scope) = scope {
            op["security"] = json!([{ "token": [scope] }]);
        }
        let mut params: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|param| {
                let mut p = json!({
                    "name": param, "in": "path", "required": true, "schema": { "type": "string" }
                });
                // What the examples name: a certificate `web` with its first files task.
                match param {
                    "name" => p["example"] = json!("web"),
                    "task" => p["example"] = json!("files-1"),
                    _ => {}
                }
                p
            })
            .collect();
        if let Some(query) = &shape.query {
            for (name, schema) in query["properties"].as_object().into_iter().flatten() {
                params.push(
                    json!({ "name": name, "in": "query", "required": false, "schema": schema }),
                );
            }
        }
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(schema) = &shape.body {
            let mut media = json!({ "schema": schema });
            if let Some(example) = &shape.example {
                media["example"] = example.clone();
            }
            op["requestBody"] =
                json!({ "required": true, "content": { "application/json": media } });
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.extend(answers.take_definitions(true));
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": { "type": "string" }, "title": { "type": "string" },
                "status": { "type": "integer" }, "detail": { "type": "string" },
                "field": { "type": "string" },
                "ca_problem": { "type": "object" },
                "retry_after": { "type": "integer", "minimum": 0 }
            }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": { "title": "certhub", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_its_answers() {
        let mut generator = SchemaSettings::draft2020_12().into_generator();
        let mut answers = SchemaSettings::draft2020_12().for_serialize().into_generator();
        for (method, path, _, scope) in ROUTES {
            let shape = shape(method, path, &mut generator, &mut answers)
                .unwrap_or_else(|| panic!("{method} {path} has no shape"));
            let errors = errors(method, path, *scope, &shape);
            // Whatever writes may find the disk full.
            assert_eq!(errors.contains(&507), *method != "get" || path.ends_with("/pull"));
            if scope.is_some() {
                assert!(errors.contains(&401) && errors.contains(&403), "{method} {path}");
            }
            if path.contains('{') {
                assert!(errors.contains(&404), "{method} {path}");
            }
            if matches!(*method, "post" | "put" | "patch") && shape.body.is_some() {
                assert!(shape.example.is_some(), "{method} {path} has an example body");
            }
        }
        let doc = document();
        let token = &doc["paths"]["/api/v1/tokens"]["post"];
        assert!(token["requestBody"]["content"]["application/json"]["schema"].is_object());
        assert_eq!(
            token["responses"]["429"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        let list = &doc["paths"]["/api/v1/certificates"]["get"]["parameters"];
        let names: Vec<&str> =
            list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["page", "per_page", "q", "state"]);
        assert!(doc["components"]["schemas"]["TokenBody"].is_object(), "bodies come from types");
        // Answers are described as written: a field always sent, even as null, is required.
        let cert = &doc["components"]["schemas"]["CertView"];
        let required: Vec<&str> =
            cert["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert!(required.contains(&"serial") && required.contains(&"renewal"), "{cert}");
        assert!(cert["properties"].get("expires_at").is_none(), "pages-only fields stay out");
    }
}
