//! CAA (RFC 8659, with RFC 8657's `accounturi` and `validationmethods`): whether a CA may
//! issue for a name, decided from the relevant record set before the CA is asked, so that a
//! name CAA forbids fails at once, naming the record, instead of at the CA.
//!
//! The relevant record set is the first non-empty CAA set found climbing from the name
//! towards the root (the resolver follows a CNAME on the way); finding it is the caller's
//! (DNS) part. This module decides, from that set, for one CA.

use std::fmt;

/// A CAA record: flags, tag and value (RFC 8659 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaRecord {
    /// Whether the issuer-critical flag (128) is set.
    pub critical: bool,
    pub tag: String,
    pub value: String,
}

impl fmt::Display for CaaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} \"{}\"", if self.critical { 128 } else { 0 }, self.tag, self.value)
    }
}

/// What the CA's records say of one identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaaVerdict {
    /// No CAA record applies: any CA may issue.
    Unrestricted,
    /// The CA may issue, by these methods (`None`: any).
    Permitted { record: String, methods: Option<Vec<String>> },
    /// The CA may not issue; `record` is the one that decides, with where it was found.
    Forbidden { record: String, why: String },
    /// The records name CAs, and this CA publishes no CAA identity to compare with.
    Unknown { records: String },
}

impl CaaVerdict {
    /// Whether the CA is refused.
    pub fn forbids(&self) -> bool {
        matches!(self, CaaVerdict::Forbidden { .. })
    }

    /// In words, for `cert test` and the pages.
    pub fn describe(&self) -> String {
        match self {
            CaaVerdict::Unrestricted => {
                "CAA: no record restricts issuance; any CA may issue".into()
            }
            CaaVerdict::Permitted { record, methods: None } => {
                format!("CAA permits this CA ({record})")
            }
            CaaVerdict::Permitted { record, methods: Some(m) } => {
                format!("CAA permits this CA by {} only ({record})", m.join(", "))
            }
            CaaVerdict::Forbidden { record, why } => format!("CAA forbids it: {why} ({record})"),
            CaaVerdict::Unknown { records } => format!(
                "CAA names the CAs that may issue ({records}), and this CA publishes no CAA \
                 identity (caaIdentities) to compare with"
            ),
        }
    }
}

/// What is asked: may the CA known by `ca_domains` (its directory's `caaIdentities`) issue
/// for a name (a wildcard when `wildcard`) for the account `account_uri`, validated by
/// `method`?
#[derive(Debug, Clone)]
pub struct CaaQuestion<'a> {
    pub ca_domains: &'a [String],
    pub account_uri: Option<&'a str>,
    pub method: Option<&'a str>,
    pub wildcard: bool,
}

/// The tags RFC 8659 defines (and `issuemail`, RFC 9495, `contactemail`/`contactphone`,
/// from the CA/B Forum): a critical record with any other tag forbids issuance.
const KNOWN_TAGS: &[&str] =
    &["issue", "issuewild", "iodef", "issuemail", "contactemail", "contactphone"];

/// Decides from `records`, the relevant record set found at `owner`.
pub fn evaluate(owner: &str, records: &[CaaRecord], q: &CaaQuestion<'_>) -> CaaVerdict {
    let at = |r: &CaaRecord| format!("{owner} CAA {r}");
    if records.is_empty() {
        return CaaVerdict::Unrestricted;
    }
    if let Some(r) = records
        .iter()
        .find(|r| r.critical && !KNOWN_TAGS.contains(&r.tag.to_ascii_lowercase().as_str()))
    {
        return CaaVerdict::Forbidden {
            record: at(r),
            why: format!("the critical tag {:?} is not one a CA knows", r.tag),
        };
    }
    let tagged = |tag: &str| -> Vec<&CaaRecord> {
        records.iter().filter(|r| r.tag.eq_ignore_ascii_case(tag)).collect()
    };
    // A wildcard is governed by issuewild when there is one, else by issue (§4.3).
    let wild = tagged("issuewild");
    let (set, tag) = if q.wildcard && !wild.is_empty() {
        (wild, "issuewild")
    } else {
        (tagged("issue"), "issue")
    };
    if set.is_empty() {
        return CaaVerdict::Unrestricted;
    }
    // Records naming a CA; the first that names none (`;`) or does not parse; the first that
    // names this CA but binds it to another account or other methods.
    let mut names = Vec::new();
    let mut none = None;
    let mut ours = None;
    for r in &set {
        let Some(issuer) = parse_issue(&r.value) else {
            // A value that does not parse permits no CA (§4.2).
            none.get_or_insert((at(r), format!("its {tag} value does not parse")));
            continue;
        };
        let Some(domain) = issuer.domain.as_deref() else {
            none.get_or_insert((at(r), format!("{tag} \";\" permits no CA")));
            continue;
        };
        names.push(at(r));
        if !q.ca_domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            continue;
        }
        // RFC 8657: bound to one account, or to some methods.
        if let (Some(want), Some(mine)) = (issuer.param("accounturi"), q.account_uri)
            && want != mine
        {
            ours.get_or_insert((at(r), format!("it is bound to the account {want}")));
            continue;
        }
        let methods = issuer.param("validationmethods").map(|m| {
            m.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>()
        });
        if let (Some(methods), Some(method)) = (&methods, q.method)
            && !methods.iter().any(|m| m == method)
        {
            ours.get_or_insert((
                at(r),
                format!("it permits {} only, not {method}", methods.join(", ")),
            ));
            continue;
        }
        return CaaVerdict::Permitted { record: at(r), methods };
    }
    if let Some((record, why)) = ours {
        return CaaVerdict::Forbidden { record, why };
    }
    if !names.is_empty() {
        if q.ca_domains.is_empty() {
            return CaaVerdict::Unknown { records: names.join("; ") };
        }
        return CaaVerdict::Forbidden {
            record: names.join("; "),
            why: format!("{tag} names other CAs than this one ({})", q.ca_domains.join(", ")),
        };
    }
    let (record, why) = none.unwrap_or_else(|| (owner.to_string(), format!("{tag} permits no CA")));
    CaaVerdict::Forbidden { record, why }
}

/// An `issue` or `issuewild` value: the issuer's domain (none for `;`) and its parameters.
struct Issuer {
    domain: Option<String>,
    params: Vec<(String, String)>,
}

impl Issuer {
    fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

/// Parses `issuer-domain-name *(";" key "=" value)` (RFC 8659 §4.2), spaces allowed around
/// the parts.
fn parse_issue(value: &str) -> Option<Issuer> {
    let mut parts = value.split(';');
    let domain = parts.next().unwrap_or_default().trim();
    let domain = if domain.is_empty() {
        None
    } else {
        let ok = domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !ok {
            return None;
        }
        Some(domain.to_ascii_lowercase())
    };
    let mut params = Vec::new();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (k, v) = p.split_once('=')?;
        params.push((k.trim().to_string(), v.trim().to_string()));
    }
    Some(Issuer { domain, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(critical: bool, tag: &str, value: &str) -> CaaRecord {
        CaaRecord { critical, tag: tag.into(), value: value.into() }
    }

    fn ask<'a>(ca: &'a [String], wildcard: bool) -> CaaQuestion<'a> {
        CaaQuestion {
            ca_domains: ca,
            account_uri: Some("https://ca.example/acct/1"),
            method: Some("dns-01"),
            wildcard,
        }
    }

    #[test]
    fn issue_and_issuewild_name_the_cas_that_may_issue() {
        let le = vec!["letsencrypt.org".to_string()];
        let none: Vec<CaaRecord> = vec![];
        assert_eq!(evaluate("a.test", &none, &ask(&le, false)), CaaVerdict::Unrestricted);
        let only_iodef = [rec(false, "iodef", "mailto:ops@a.test")];
        assert_eq!(evaluate("a.test", &only_iodef, &ask(&le, false)), CaaVerdict::Unrestricted);
        let set = [rec(false, "issue", "letsencrypt.org"), rec(false, "issuewild", ";")];
        assert!(matches!(
            evaluate("a.test", &set, &ask(&le, false)),
            CaaVerdict::Permitted { methods: None, .. }
        ));
        // A wildcard is governed by issuewild, which here permits none.
        let wild = evaluate("a.test", &set, &ask(&le, true));
        assert!(wild.forbids(), "{wild:?}");
        assert!(wild.describe().contains("a.test CAA 0 issuewild \";\""), "{}", wild.describe());
        // Another CA only.
        let other = [rec(false, "issue", "pki.goog")];
        let said = evaluate("a.test", &other, &ask(&le, false));
        assert!(said.forbids() && said.describe().contains("pki.goog"), "{said:?}");
        // Without an identity of its own, a CA can only be told what the records say.
        assert!(matches!(evaluate("a.test", &other, &ask(&[], false)), CaaVerdict::Unknown { .. }));
        assert!(evaluate("a.test", &[rec(false, "issue", ";")], &ask(&[], false)).forbids());
    }

    #[test]
    fn account_and_method_bindings_and_critical_unknown_tags() {
        let le = vec!["letsencrypt.org".to_string()];
        let bound = [rec(false, "issue", "letsencrypt.org; accounturi=https://ca.example/acct/2")];
        let said = evaluate("a.test", &bound, &ask(&le, false));
        assert!(said.forbids() && said.describe().contains("acct/2"), "{said:?}");
        let mine = [rec(false, "issue", "letsencrypt.org; accounturi=https://ca.example/acct/1")];
        assert!(!evaluate("a.test", &mine, &ask(&le, false)).forbids());
        let http_only = [rec(false, "issue", "letsencrypt.org; validationmethods=http-01")];
        let said = evaluate("a.test", &http_only, &ask(&le, false));
        assert!(said.forbids() && said.describe().contains("http-01 only"), "{said:?}");
        let both = [rec(false, "issue", "letsencrypt.org;validationmethods=dns-01,http-01")];
        let want = Some(vec!["dns-01".to_string(), "http-01".to_string()]);
        assert!(matches!(
            evaluate("a.test", &both, &ask(&le, false)),
            CaaVerdict::Permitted { methods, .. } if methods == want
        ));
        // A critical tag nobody knows forbids; a non-critical one is passed by.
        let critical = [rec(true, "tbs", "x"), rec(false, "issue", "letsencrypt.org")];
        let said = evaluate("a.test", &critical, &ask(&le, false));
        assert!(said.forbids() && said.describe().contains("128 tbs"), "{said:?}");
        let plain = [rec(false, "tbs", "x"), rec(false, "issue", "letsencrypt.org")];
        assert!(!evaluate("a.test", &plain, &ask(&le, false)).forbids());
        // A value that does not parse permits nobody.
        assert!(
            evaluate("a.test", &[rec(false, "issue", "not a domain")], &ask(&le, false)).forbids()
        );
    }
}
