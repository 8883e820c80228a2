//! The DNS providers whose APIs answer dns-01 (`dns-01:provider=NAME,credential=C[,zone=Z]`),
//! each with the fields of its credential. A provider's name is also the kind of credential
//! it takes (`certhub credential add C --kind NAME`).
//!
//! The APIs themselves are spoken by the `dns-update` crate (in certhub-challenge); this list
//! is what certhub offers of them, and what `certhub dns providers` prints.

use crate::credential::{Field, Kind};

const fn secret(name: &'static str, about: &'static str) -> Field {
    Field { name, secret: true, required: true, about }
}

const fn plain(name: &'static str, about: &'static str) -> Field {
    Field { name, secret: false, required: true, about }
}

const fn optional(name: &'static str, about: &'static str) -> Field {
    Field { name, secret: false, required: false, about }
}

const fn provider(name: &'static str, about: &'static str, fields: &'static [Field]) -> Kind {
    Kind { name, about, fields }
}

const API_TOKEN: Field = secret("api-token", "the API token");
const API_KEY: Field = secret("api-key", "the API key");

/// The DNS providers, by name.
pub const PROVIDERS: &[Kind] = &[
    provider("arvancloud", "ArvanCloud", &[API_KEY]),
    provider(
        "azure",
        "Azure DNS (a service principal with the DNS Zone Contributor role)",
        &[
            plain("tenant-id", "the directory (tenant) ID"),
            plain("client-id", "the application (client) ID"),
            secret("client-secret", "the client secret"),
            plain("subscription-id", "the subscription holding the zone"),
            plain("resource-group", "the resource group holding the zone"),
            optional("environment", "public (the default), china or usgovernment"),
        ],
    ),
    provider("bunny", "Bunny DNS", &[API_KEY]),
    provider(
        "cloudflare",
        "Cloudflare (an API token with Zone:Read and DNS:Edit on the zone)",
        &[API_TOKEN],
    ),
    provider(
        "cloudns",
        "ClouDNS",
        &[
            optional("auth-id", "the API user ID (or give sub-auth-id)"),
            optional("sub-auth-id", "the API sub-user ID"),
            secret("auth-password", "the API user's password"),
        ],
    ),
    provider(
        "constellix",
        "Constellix",
        &[plain("api-key", "the API key"), secret("secret-key", "the secret key")],
    ),
    provider(
        "cpanel",
        "cPanel (UAPI)",
        &[
            plain("url", "the cPanel address, e.g. https://host:2083"),
            plain("username", "the cPanel user"),
            API_TOKEN,
        ],
    ),
    provider("desec", "deSEC", &[API_TOKEN]),
    provider("digitalocean", "DigitalOcean (a personal access token, write scope)", &[API_TOKEN]),
    provider("dnsimple", "DNSimple", &[API_TOKEN, plain("account-id", "the account ID")]),
    provider(
        "dnsmadeeasy",
        "DNS Made Easy",
        &[plain("api-key", "the API key"), secret("api-secret", "the API secret")],
    ),
    provider(
        "domeneshop",
        "Domeneshop",
        &[plain("api-token", "the API token"), secret("api-secret", "the API secret")],
    ),
    provider("dreamhost", "DreamHost", &[API_KEY]),
    provider("duckdns", "Duck DNS", &[secret("token", "the account token")]),
    provider("dynu", "Dynu", &[API_KEY]),
    provider(
        "easydns",
        "easyDNS",
        &[plain("api-token", "the API token"), secret("api-key", "the API key")],
    ),
    provider(
        "exoscale",
        "Exoscale",
        &[plain("api-key", "the API key"), secret("api-secret", "the API secret")],
    ),
    provider("gandi", "Gandi LiveDNS (a personal access token)", &[API_TOKEN]),
    provider(
        "gcloud",
        "Google Cloud DNS (a service account with the DNS Administrator role)",
        &[
            secret("service-account", "the service account's JSON key (--from-file)"),
            optional("project-id", "the project holding the zone (else the key's project)"),
            optional("managed-zone", "the managed zone's name (else found by the domain)"),
        ],
    ),
    provider("gcore", "Gcore", &[API_TOKEN]),
    provider(
        "glesys",
        "GleSYS",
        &[plain("api-user", "the API user"), secret("api-key", "the API key")],
    ),
    provider(
        "godaddy",
        "GoDaddy",
        &[plain("api-key", "the API key"), secret("api-secret", "the API secret")],
    ),
    provider("hetzner", "Hetzner (a Hetzner Cloud API token, read and write)", &[API_TOKEN]),
    provider("hostingde", "hosting.de", &[API_KEY]),
    provider("hostinger", "Hostinger", &[API_TOKEN]),
    provider(
        "ibmcloud",
        "IBM Cloud (SoftLayer)",
        &[plain("username", "the API user"), secret("api-key", "the API key")],
    ),
    provider("infomaniak", "Infomaniak", &[API_TOKEN]),
    provider(
        "inwx",
        "INWX",
        &[plain("username", "the account user"), secret("password", "the account password")],
    ),
    provider("ionos", "IONOS (prefix.secret)", &[API_KEY]),
    provider(
        "linode",
        "Linode (Akamai) (a personal access token, Domains read/write)",
        &[API_TOKEN],
    ),
    provider(
        "luadns",
        "LuaDNS",
        &[plain("username", "the account e-mail"), secret("api-token", "the API token")],
    ),
    provider(
        "mythicbeasts",
        "Mythic Beasts",
        &[plain("username", "the API key ID"), secret("password", "the API key secret")],
    ),
    provider(
        "namecheap",
        "Namecheap",
        &[
            plain("api-user", "the API user"),
            secret("api-key", "the API key"),
            plain("client-ip", "the address certhub calls from (allow-listed at Namecheap)"),
            optional("username", "the account user, if not the API user"),
        ],
    ),
    provider(
        "namedotcom",
        "Name.com",
        &[plain("username", "the account user"), secret("api-token", "the API token")],
    ),
    provider("namesilo", "NameSilo", &[API_KEY]),
    provider(
        "netcup",
        "netcup",
        &[
            plain("customer-number", "the customer number"),
            secret("api-key", "the API key"),
            secret("api-password", "the API password"),
        ],
    ),
    provider("netlify", "Netlify", &[API_TOKEN]),
    provider("ns1", "NS1 (IBM NS1 Connect)", &[API_KEY]),
    provider(
        "ovh",
        "OVHcloud (an application key, its secret and a consumer key)",
        &[
            plain("application-key", "the application key"),
            secret("application-secret", "the application secret"),
            secret("consumer-key", "the consumer key"),
            optional(
                "endpoint",
                "ovh-eu (the default), ovh-us, ovh-ca, kimsufi-eu, kimsufi-ca, soyoustart-eu \
                 or soyoustart-ca",
            ),
        ],
    ),
    provider(
        "plesk",
        "Plesk",
        &[plain("url", "the Plesk address, e.g. https://host:8443"), API_KEY],
    ),
    provider(
        "porkbun",
        "Porkbun",
        &[plain("api-key", "the API key"), secret("secret-api-key", "the secret API key")],
    ),
    provider(
        "powerdns",
        "PowerDNS Authoritative (its HTTP API)",
        &[
            plain("url", "the API's address, e.g. http://ns1.example.com:8081"),
            API_KEY,
            optional("server-id", "the server ID (localhost, the default)"),
        ],
    ),
    provider(
        "route53",
        "Amazon Route 53 (an IAM user or role with route53:ChangeResourceRecordSets)",
        &[
            plain("access-key-id", "the access key ID"),
            secret("secret-access-key", "the secret access key"),
            Field {
                name: "session-token",
                secret: true,
                required: false,
                about: "a session token, for temporary credentials",
            },
            optional("region", "the region (us-east-1, the default)"),
            optional("hosted-zone-id", "the hosted zone's ID (else found by the domain)"),
            optional("endpoint", "another Route 53 endpoint, e.g. a private one"),
        ],
    ),
    provider("safedns", "ANS SafeDNS", &[API_TOKEN]),
    provider("scaleway", "Scaleway (a secret key)", &[API_TOKEN]),
    provider(
        "simplycom",
        "Simply.com",
        &[plain("account-name", "the account name"), secret("api-key", "the API key")],
    ),
    provider(
        "spaceship",
        "Spaceship",
        &[plain("api-key", "the API key"), secret("api-secret", "the API secret")],
    ),
    provider(
        "transip",
        "TransIP",
        &[plain("login", "the account login"), secret("private-key", "the API private key (PEM)")],
    ),
    provider("vercel", "Vercel", &[API_TOKEN, optional("team-id", "the team, if not personal")]),
    provider("vultr", "Vultr", &[API_KEY]),
    provider(
        "websupport",
        "Websupport",
        &[plain("api-key", "the API key"), secret("api-secret", "the API secret")],
    ),
    provider(
        "zoneee",
        "Zone.ee",
        &[plain("username", "the account user"), secret("api-key", "the API key")],
    ),
];

/// The provider named `name`, or why there is none.
pub fn provider_named(name: &str) -> Result<&'static Kind, String> {
    PROVIDERS.iter().find(|p| p.name == name).ok_or_else(|| {
        format!(
            "there is no DNS provider {name:?}: `certhub dns providers` lists the {} there are",
            PROVIDERS.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_sorted_unique_and_no_kind_of_their_own_is_shadowed() {
        let names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        for k in crate::credential::KINDS {
            assert!(!names.contains(&k.name), "{} is a credential kind and a provider", k.name);
        }
        for p in PROVIDERS {
            assert!(p.fields.iter().any(|f| f.required && f.secret), "{} has no secret", p.name);
        }
        assert!(provider_named("cloudfare").unwrap_err().contains("certhub dns providers"));
    }
}
