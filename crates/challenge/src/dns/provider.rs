//! dns-01 through a DNS provider's HTTP API (`dns-01:provider=NAME,credential=C[,zone=Z]`),
//! spoken by the `dns-update` crate. The providers offered, and their credentials' fields,
//! are listed in [`certhub_core::dns_provider::PROVIDERS`]; [`updater`] maps each to the
//! crate's client.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use certhub_core::{PendingChallenge, Secret, Solver, SolverError};
use dns_update::providers::azuredns::{AzureDnsConfig, AzureEnvironment};
use dns_update::providers::google_cloud_dns::GoogleCloudDnsConfig;
use dns_update::providers::ovh::OvhEndpoint;
use dns_update::providers::route53::Route53Config;
use dns_update::{DnsRecord, DnsRecordType, DnsUpdater};
use hickory_proto::rr::Name;

use super::propagation::PropagationChecker;
use super::{record_name, txt_value};

/// How long one API request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The TTL of a TXT record: a minute, or the least the provider accepts.
fn ttl(provider: &str) -> u32 {
    match provider {
        "gandi" => 300,
        "godaddy" => 600,
        _ => 60,
    }
}

/// Publishes TXT records through one provider's API, with one credential.
pub struct ProviderSolver {
    provider: String,
    credential: String,
    zone: Option<String>,
    updater: DnsUpdater,
    checker: PropagationChecker,
}

impl ProviderSolver {
    /// `fields` are the credential's (named `credential`), as its kind (the provider's
    /// name) defines them.
    pub fn new(
        provider: &str,
        credential: &str,
        fields: &BTreeMap<String, Secret>,
        zone: Option<String>,
        checker: PropagationChecker,
    ) -> Result<Self, SolverError> {
        let updater = updater(provider, fields).map_err(|e| {
            SolverError::Unsupported(format!("credential {credential} for {provider}: {e}"))
        })?;
        Ok(Self {
            provider: provider.to_string(),
            credential: credential.to_string(),
            zone,
            updater,
            checker,
        })
    }

    /// The zone to change for `name`: the one given, else the one its SOA names.
    async fn zone_of(&self, name: &Name) -> Result<String, SolverError> {
        let name_text = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
        match &self.zone {
            Some(zone) if name_text == *zone || name_text.ends_with(&format!(".{zone}")) => {
                Ok(zone.clone())
            }
            Some(zone) => Err(SolverError::Unsupported(format!(
                "{name_text} is not in zone {zone} (zone= of the challenge): give the zone \
                 that holds it, or leave zone= out to find it by its SOA record"
            ))),
            None => match self.checker.zone_of(name).await {
                Ok(z) => Ok(z.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
                Err(e) => Err(SolverError::Dns(format!(
                    "{e}; or name the zone in the challenge with zone=ZONE"
                ))),
            },
        }
    }

    /// Says what the provider answered, in its own words where it gave some.
    fn refused(&self, what: &str, name: &str, zone: &str, e: dns_update::Error) -> SolverError {
        use dns_update::Error as E;
        let (provider, credential) = (&self.provider, &self.credential);
        let said = match e {
            E::Unauthorized => format!(
                "the {provider} API answered 401 Unauthorized: it did not accept credential \
                 {credential}; check it with `certhub credential show {credential}` and replace \
                 it with `certhub credential rotate {credential}`"
            ),
            E::NotFound => format!(
                "the {provider} API answered 404 Not Found: this account has no zone {zone}, \
                 or credential {credential} may not see it; give the zone with zone=ZONE if \
                 it is another"
            ),
            E::BadRequest => format!("the {provider} API answered 400 Bad Request"),
            E::Api(m) | E::Response(m) => format!("the {provider} API answered {}", in_words(&m)),
            E::Client(m) | E::Protocol(m) => {
                format!("the {provider} API could not be reached: {m}")
            }
            E::Parse(m) | E::Serialize(m) => {
                format!("the {provider} API's answer was not understood: {m}")
            }
            E::Unsupported(m) => format!("the {provider} API cannot do this: {m}"),
            E::InvalidRegion => format!("credential {credential}'s region is not valid"),
            other => format!("the {provider} API failed: {other:?}"),
        };
        SolverError::Dns(format!("could not {what} the TXT record {name} in zone {zone}: {said}"))
    }

    async fn change(&self, challenge: &PendingChallenge, add: bool) -> Result<(), SolverError> {
        let record = record_name(challenge);
        let value = txt_value(&challenge.key_authorization);
        // Publish where a CNAME on _acme-challenge points, if it points anywhere.
        let target = self.checker.follow_cname(&record).await?;
        let zone = self.zone_of(&target).await?;
        let name = target.to_ascii().trim_end_matches('.').to_string();
        let records = vec![DnsRecord::TXT(value)];
        // Several APIs change a name's values by reading them all and writing them back:
        // two changes at one name (a wildcard and its base name) must not interleave.
        let lock = name_lock(&name);
        let _held = lock.lock().await;
        let result = if add {
            let ttl = ttl(&self.provider);
            self.updater.add_to_rrset(&name, DnsRecordType::TXT, ttl, records, &zone).await
        } else {
            self.updater.remove_from_rrset(&name, DnsRecordType::TXT, records, &zone).await
        };
        result.map_err(|e| self.refused(if add { "add" } else { "delete" }, &name, &zone, e))
    }
}

/// `HTTP 403: {"errors":[{"code":9109,"message":"Invalid access token"}],…}` as
/// `HTTP 403: Invalid access token`: the messages of a JSON error body, else the body.
fn in_words(answer: &str) -> String {
    fn messages(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let wordy = ["message", "error_description", "detail", "reason", "title"];
                    match v {
                        serde_json::Value::String(s) if wordy.contains(&k.as_str()) => {
                            if !s.trim().is_empty() && !out.contains(s) {
                                out.push(s.trim().to_string());
                            }
                        }
                        other => messages(other, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| messages(i, out)),
            _ => {}
        }
    }
    let (status, body) = match answer.split_once([':', ' ']) {
        Some((status, body)) if answer.starts_with("HTTP ") => match body.split_once(':') {
            Some((code, body)) => (format!("{status} {}", code.trim()), body),
            None => (status.to_string(), body),
        },
        Some(("BadRequest", body)) => ("HTTP 400".to_string(), body),
        _ => return answer.to_string(),
    };
    let mut found = Vec::new();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body.trim()) {
        messages(&json, &mut found);
    }
    if found.is_empty() { answer.to_string() } else { format!("{status}: {}", found.join("; ")) }
}

/// The lock for changes at the owner name `name`, shared by every solver of this process.
fn name_lock(name: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Mutex::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    let key = name.to_ascii_lowercase();
    if let Some(lock) = locks.get(&key).and_then(Weak::upgrade) {
        return lock;
    }
    locks.retain(|_, l| l.strong_count() > 0);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(key, Arc::downgrade(&lock));
    lock
}

#[async_trait::async_trait]
impl Solver for ProviderSolver {
    async fn present(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        self.change(challenge, true).await?;
        let record = record_name(challenge);
        self.checker.wait_visible(&record, &txt_value(&challenge.key_authorization)).await
    }

    async fn cleanup(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        self.change(challenge, false).await
    }
}

/// The `dns-update` client for `provider` with a credential's `fields` (checked against
/// its kind before they are stored, so a required field is there).
pub fn updater(provider: &str, fields: &BTreeMap<String, Secret>) -> Result<DnsUpdater, String> {
    let get = |name: &str| fields.get(name).map(|v| v.expose().trim().to_string());
    let field = |name: &str| -> Result<String, String> {
        get(name).filter(|v| !v.is_empty()).ok_or_else(|| format!("the field {name} is missing"))
    };
    let t = Some(TIMEOUT);
    let built = match provider {
        "arvancloud" => DnsUpdater::new_arvancloud(field("api-key")?, t),
        "azure" => DnsUpdater::new_azuredns(AzureDnsConfig {
            tenant_id: field("tenant-id")?,
            client_id: field("client-id")?,
            client_secret: field("client-secret")?,
            subscription_id: field("subscription-id")?,
            resource_group: field("resource-group")?,
            environment: match get("environment").as_deref() {
                None | Some("" | "public") => AzureEnvironment::Public,
                Some(e @ ("china" | "usgovernment")) => AzureEnvironment::from_str_lossy(e),
                Some(other) => {
                    return Err(format!(
                        "environment {other:?} is not public, china or usgovernment"
                    ));
                }
            },
            request_timeout: t,
        }),
        "bunny" => DnsUpdater::new_bunny(field("api-key")?, t),
        "cloudflare" => DnsUpdater::new_cloudflare(field("api-token")?, t),
        "cloudns" => {
            let (id, sub) = (get("auth-id").filter(|v| !v.is_empty()), get("sub-auth-id"));
            let sub = sub.filter(|v| !v.is_empty());
            if id.is_none() && sub.is_none() {
                return Err("give auth-id or sub-auth-id".into());
            }
            DnsUpdater::new_cloudns(id, sub, field("auth-password")?, t)
        }
        "constellix" => DnsUpdater::new_constellix(field("api-key")?, field("secret-key")?, t),
        "cpanel" => {
            DnsUpdater::new_cpanel(field("url")?, field("username")?, field("api-token")?, t)
        }
        "desec" => DnsUpdater::new_desec(field("api-token")?, t),
        "digitalocean" => DnsUpdater::new_digitalocean(field("api-token")?, t),
        "dnsimple" => DnsUpdater::new_dnsimple(field("api-token")?, field("account-id")?, t),
        "dnsmadeeasy" => DnsUpdater::new_dnsmadeeasy(field("api-key")?, field("api-secret")?, t),
        "domeneshop" => DnsUpdater::new_domeneshop(field("api-token")?, field("api-secret")?, t),
        "dreamhost" => DnsUpdater::new_dreamhost(field("api-key")?, t),
        "duckdns" => DnsUpdater::new_duckdns(field("token")?, t),
        "dynu" => DnsUpdater::new_dynu(field("api-key")?, t),
        "easydns" => DnsUpdater::new_easydns(field("api-token")?, field("api-key")?, t),
        "exoscale" => DnsUpdater::new_exoscale(field("api-key")?, field("api-secret")?, t),
        "gandi" => DnsUpdater::new_gandiv5(field("api-token")?, t),
        "gcloud" => {
            let json = field("service-account")?;
            let key: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| format!("service-account is not a JSON key file: {e}"))?;
            let project_id = match get("project-id").filter(|p| !p.is_empty()) {
                Some(p) => p,
                None => key["project_id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or("service-account names no project_id: give project-id".to_string())?,
            };
            DnsUpdater::new_google_cloud_dns(GoogleCloudDnsConfig {
                service_account_json: json,
                project_id,
                managed_zone: get("managed-zone").filter(|z| !z.is_empty()),
                private_zone: false,
                impersonate_service_account: None,
                request_timeout: t,
            })
        }
        "gcore" => DnsUpdater::new_gcore(field("api-token")?, t),
        "glesys" => DnsUpdater::new_glesys(field("api-user")?, field("api-key")?, t),
        "godaddy" => DnsUpdater::new_godaddy(field("api-key")?, field("api-secret")?, t),
        "hetzner" => DnsUpdater::new_hetzner(field("api-token")?, t),
        "hostingde" => DnsUpdater::new_hostingde(field("api-key")?, t),
        "hostinger" => DnsUpdater::new_hostinger(field("api-token")?, t),
        "ibmcloud" => DnsUpdater::new_ibmcloud(field("username")?, field("api-key")?, t),
        "infomaniak" => DnsUpdater::new_infomaniak(field("api-token")?, t),
        "inwx" => DnsUpdater::new_inwx(field("username")?, field("password")?, false, t),
        "ionos" => DnsUpdater::new_ionos(field("api-key")?, t),
        "linode" => DnsUpdater::new_linode(field("api-token")?, t),
        "luadns" => DnsUpdater::new_luadns(field("username")?, field("api-token")?, t),
        "mythicbeasts" => DnsUpdater::new_mythicbeasts(field("username")?, field("password")?, t),
        "namecheap" => DnsUpdater::new_namecheap(
            field("api-user")?,
            field("api-key")?,
            field("client-ip")?,
            get("username").filter(|u| !u.is_empty()),
            t,
        ),
        "namedotcom" => DnsUpdater::new_namedotcom(field("username")?, field("api-token")?, t),
        "namesilo" => DnsUpdater::new_namesilo(field("api-key")?, t),
        "netcup" => DnsUpdater::new_netcup(
            field("customer-number")?,
            field("api-key")?,
            field("api-password")?,
            t,
        ),
        "netlify" => DnsUpdater::new_netlify(field("api-token")?, t),
        "ns1" => DnsUpdater::new_ns1(field("api-key")?, t),
        "ovh" => {
            let endpoint = get("endpoint").filter(|e| !e.is_empty());
            let endpoint: OvhEndpoint =
                endpoint.as_deref().unwrap_or("ovh-eu").parse().map_err(|_| {
                    format!(
                        "endpoint {:?} is not one of ovh-eu, ovh-us, ovh-ca, kimsufi-eu, \
                         kimsufi-ca, soyoustart-eu, soyoustart-ca",
                        endpoint.unwrap_or_default()
                    )
                })?;
            DnsUpdater::new_ovh(
                field("application-key")?,
                field("application-secret")?,
                field("consumer-key")?,
                endpoint,
                t,
            )
        }
        "plesk" => DnsUpdater::new_plesk(field("url")?, field("api-key")?, t),
        "porkbun" => DnsUpdater::new_porkbun(field("api-key")?, field("secret-api-key")?, t),
        "powerdns" => DnsUpdater::new_pdns(
            field("api-key")?,
            Some(field("url")?),
            get("server-id").filter(|s| !s.is_empty()),
            t,
        ),
        "route53" => DnsUpdater::new_route53(Route53Config {
            access_key_id: field("access-key-id")?,
            secret_access_key: field("secret-access-key")?,
            session_token: get("session-token").filter(|s| !s.is_empty()),
            region: get("region").filter(|s| !s.is_empty()),
            hosted_zone_id: get("hosted-zone-id").filter(|s| !s.is_empty()),
            private_zone_only: None,
            endpoint: get("endpoint").filter(|s| !s.is_empty()),
        }),
        "safedns" => DnsUpdater::new_safedns(field("api-token")?, t),
        "scaleway" => DnsUpdater::new_scaleway(field("api-token")?, t),
        "simplycom" => DnsUpdater::new_simplycom(field("account-name")?, field("api-key")?, t),
        "spaceship" => DnsUpdater::new_spaceship(field("api-key")?, field("api-secret")?, t),
        "transip" => DnsUpdater::new_transip(field("login")?, field("private-key")?, false, t),
        "vercel" => {
            DnsUpdater::new_vercel(field("api-token")?, get("team-id").filter(|s| !s.is_empty()), t)
        }
        "vultr" => DnsUpdater::new_vultr(field("api-key")?, t),
        "websupport" => DnsUpdater::new_websupport(field("api-key")?, field("api-secret")?, t),
        "zoneee" => DnsUpdater::new_zoneeu(field("username")?, field("api-key")?, t),
        other => {
            return Err(certhub_core::dns_provider::provider_named(other)
                .err()
                .unwrap_or_else(|| format!("{other} has no client")));
        }
    };
    built.map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every provider offered has a client, built from its credential's required fields.
    #[test]
    fn every_provider_offered_builds_from_its_fields() {
        for p in certhub_core::dns_provider::PROVIDERS {
            let mut fields: BTreeMap<String, Secret> = p
                .fields
                .iter()
                .filter(|f| f.required)
                .map(|f| (f.name.to_string(), Secret::new("x")))
                .collect();
            match p.name {
                "gcloud" => {
                    let key = r#"{"type":"service_account","project_id":"p","client_email":"a@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"}"#;
                    fields.insert("service-account".into(), Secret::new(key));
                }
                "cloudns" => {
                    fields.insert("auth-id".into(), Secret::new("1"));
                }
                "transip" | "cpanel" | "plesk" | "powerdns" => {
                    fields.insert("url".into(), Secret::new("https://dns.example.com"));
                }
                "namecheap" => {
                    fields.insert("client-ip".into(), Secret::new("192.0.2.1"));
                }
                _ => {}
            }
            if let Err(e) = updater(p.name, &fields) {
                // TransIP reads its private key when made: a placeholder is refused as such.
                assert!(p.name == "transip", "{}: {e}", p.name);
            }
        }
        let bad = BTreeMap::from([("api-token".to_string(), Secret::new(""))]);
        assert_eq!(updater("cloudflare", &bad).err().unwrap(), "the field api-token is missing");
        let ovh: BTreeMap<String, Secret> =
            ["application-key", "application-secret", "consumer-key", "endpoint"]
                .iter()
                .map(|f| {
                    (f.to_string(), Secret::new(if *f == "endpoint" { "ovh-mars" } else { "k" }))
                })
                .collect();
        assert!(updater("ovh", &ovh).err().unwrap().contains("ovh-eu, ovh-us"));
    }

    #[test]
    fn a_providers_error_body_is_said_in_its_own_words() {
        let cf = r#"HTTP 403: {"errors":[{"code":9109,"message":"Invalid access token"}],"success":false}"#;
        assert_eq!(in_words(cf), "HTTP 403: Invalid access token");
        let azure = r#"HTTP 401: {"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret."}"#;
        assert_eq!(in_words(azure), "HTTP 401: AADSTS7000215: Invalid client secret.");
        let gandi = r#"BadRequest {"status":"error","errors":[{"name":"rrset_ttl","description":"x"}],"message":"Bad TTL"}"#;
        assert_eq!(in_words(gandi), "HTTP 400: Bad TTL");
        assert_eq!(
            in_words("HTTP 502: <html>bad gateway</html>"),
            "HTTP 502: <html>bad gateway</html>"
        );
        assert_eq!(in_words("HTTP 500"), "HTTP 500");
    }
}
