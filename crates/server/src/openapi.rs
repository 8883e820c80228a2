//! The OpenAPI 3.1 document of `/api/v1`, built from one table of the routes (a test checks
//! that every route in it is served, and that nothing else is).

use serde_json::{Map, Value, json};

/// Every route: method, path, summary, and the scope it needs (`None`: no token).
pub const ROUTES: &[(&str, &str, &str, Option<&str>)] = &[
    ("get", "/api/v1/health", "Liveness, and whether the hub still needs its setup", None),
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
    ("get", "/api/v1/jobs/{id}", "A job's status and steps", Some("cert:read")),
    ("get", "/api/v1/accounts", "CA accounts", Some("cert:read")),
    ("post", "/api/v1/accounts", "Register a CA account (admin)", Some("admin")),
    ("get", "/api/v1/audit", "The audit log, oldest first (admin)", Some("admin")),
    ("get", "/api/v1/audit/verify", "Check the audit log's hash chain (admin)", Some("admin")),
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, scope) in ROUTES {
        let mut op = json!({
            "summary": summary,
            "responses": {
                "200": { "description": "OK" },
                "default": {
                    "description": "An error",
                    "content": { "application/problem+json": {
                        "schema": { "$ref": "#/components/schemas/Problem" } } }
                }
            }
        });
        if let Some(scope) = scope {
            op["security"] = json!([{ "token": [scope] }]);
        }
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|param| {
                json!({
                    "name": param, "in": "path", "required": true, "schema": { "type": "string" }
                })
            })
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "certhub", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": { "type": "string" }, "title": { "type": "string" },
                    "status": { "type": "integer" }, "detail": { "type": "string" },
                    "field": { "type": "string" }
                }
            }}
        }
    })
}
