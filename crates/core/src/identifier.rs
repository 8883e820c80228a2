//! Identifiers (DNS names, wildcards, IP addresses) and the rules a request must obey.
//!
//! [`Identifier::parse`] turns one name as a user wrote it into its normal form, or says
//! which rule it breaks. [`normalize`] does that for a whole request, collecting every
//! violation, collapsing duplicates and dropping names a wildcard in the same request
//! already covers. [`assign_challenges`] picks the challenge configuration each identifier
//! is validated with.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::challenge::{ChallengeKind, ChallengeSpec};

/// The longest DNS name, in characters, without the trailing dot (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 253;
/// The longest DNS label, in characters (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// An identifier in a certificate request, normalised: DNS names are lowercase ASCII
/// (IDNs in punycode) without a trailing dot; wildcards keep their leading `*.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Identifier {
    /// A DNS name or wildcard (`*.example.com`).
    Dns(String),
    /// An IP address (RFC 8738).
    Ip(IpAddr),
}

impl Identifier {
    /// Is this a wildcard name?
    pub fn is_wildcard(&self) -> bool {
        matches!(self, Self::Dns(n) if n.starts_with("*."))
    }

    /// Parses one identifier as a user wrote it and returns its normal form.
    ///
    /// An IPv4 or IPv6 address becomes [`Identifier::Ip`]. Anything else is a DNS name:
    /// surrounding whitespace is trimmed, the name is lowercased, one trailing dot is
    /// removed and an internationalised name is converted to punycode (UTS #46). The result
    /// must then be at most 253 characters, every label 1 to 63 characters of `a-z`, `0-9`
    /// and `-` without a hyphen at either end, the last label not all digits, and a
    /// wildcard may only be the whole leftmost label followed by at least two labels
    /// (`*.example.com`, not `*.com`).
    ///
    /// Single-label names such as `localhost` are accepted here; [`normalize`] refuses them
    /// when the request goes to a public CA.
    pub fn parse(input: &str) -> Result<Identifier, RuleViolation> {
        let given = input.trim();
        if given.is_empty() {
            return Err(RuleViolation::new(given, Rule::Empty, "the name is empty"));
        }
        if let Ok(ip) = given.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }

        let mut name = if given.is_ascii() {
            given.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_cow(given.as_bytes(), idna::AsciiDenyList::EMPTY)
                .map_err(|_| {
                    RuleViolation::new(
                        given,
                        Rule::InvalidIdn,
                        "not a valid internationalised domain name (UTS #46 conversion to punycode failed)",
                    )
                })?
                .into_owned()
        };
        if name.ends_with('.') {
            name.pop();
        }
        if name.is_empty() {
            return Err(RuleViolation::new(given, Rule::Empty, "the name is empty"));
        }

        let (wildcard, base) = match name.strip_prefix("*.") {
            Some(base) => (true, base),
            None => (false, name.as_str()),
        };
        if base.contains('*') {
            return Err(RuleViolation::new(
                given,
                Rule::InvalidWildcard,
                "a wildcard is allowed only as the whole leftmost label, as in *.example.com",
            ));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(RuleViolation::new(
                given,
                Rule::NameTooLong,
                format!(
                    "the name is {} characters long; at most {MAX_NAME_LEN} are allowed",
                    name.len()
                ),
            ));
        }
        for label in base.split('.') {
            check_label(given, label)?;
        }
        let labels = base.split('.').count();
        if base.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
            return Err(RuleViolation::new(
                given,
                Rule::NumericTld,
                "the last label is all digits, so this is neither an IP address nor a DNS name",
            ));
        }
        if wildcard && labels < 2 {
            return Err(RuleViolation::new(
                given,
                Rule::InvalidWildcard,
                format!(
                    "a wildcard must be followed by at least two labels; *.{base} would cover a whole top-level domain"
                ),
            ));
        }
        if base.split('.').any(|l| l.starts_with("xn--"))
            && idna::domain_to_ascii_cow(base.as_bytes(), idna::AsciiDenyList::EMPTY).is_err()
        {
            return Err(RuleViolation::new(
                given,
                Rule::InvalidIdn,
                "an xn-- label is not valid punycode of an internationalised name (UTS #46)",
            ));
        }
        Ok(Self::Dns(name))
    }

    /// The name an ACME authorization is for: the base name without `*.` for a wildcard,
    /// otherwise the identifier itself.
    pub fn authorization_name(&self) -> String {
        match self {
            Self::Dns(n) => n.strip_prefix("*.").unwrap_or(n).to_string(),
            Self::Ip(ip) => ip.to_string(),
        }
    }

    /// The ACME identifier type (RFC 8555 §9.7.7, RFC 8738): `"dns"` or `"ip"`.
    pub fn to_acme_type(&self) -> &'static str {
        match self {
            Self::Dns(_) => "dns",
            Self::Ip(_) => "ip",
        }
    }

    /// Does this wildcard cover `other`? `*.example.com` covers exactly one more label:
    /// `www.example.com`, but neither `example.com` nor `a.b.example.com`. A non-wildcard
    /// covers nothing, and no wildcard covers another wildcard or an IP address.
    pub fn covers(&self, other: &Identifier) -> bool {
        let (Self::Dns(wild), Self::Dns(name)) = (self, other) else {
            return false;
        };
        let Some(base) = wild.strip_prefix("*.") else {
            return false;
        };
        if name.starts_with("*.") {
            return false;
        }
        match name.split_once('.') {
            Some((first, rest)) => !first.is_empty() && rest == base,
            None => false,
        }
    }
}

impl FromStr for Identifier {
    type Err = RuleViolation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn check_label(given: &str, label: &str) -> Result<(), RuleViolation> {
    if label.is_empty() {
        return Err(RuleViolation::new(
            given,
            Rule::EmptyLabel,
            "the name has an empty label (two dots in a row, or a leading dot)",
        ));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(RuleViolation::new(
            given,
            Rule::LabelTooLong,
            format!(
                "the label {label:?} is {} characters long; at most {MAX_LABEL_LEN} are allowed",
                label.len()
            ),
        ));
    }
    if let Some(c) =
        label.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(RuleViolation::new(
            given,
            Rule::InvalidCharacter,
            format!("the character {c:?} is not allowed; labels may contain only a-z, 0-9 and -"),
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(RuleViolation::new(
            given,
            Rule::HyphenAtLabelEdge,
            format!("the label {label:?} starts or ends with a hyphen"),
        ));
    }
    Ok(())
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(n) => f.write_str(n),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The rule an identifier breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Rule {
    /// The name, or the whole request, is empty.
    Empty,
    /// A label is empty (`a..b`, `.a`).
    EmptyLabel,
    /// A label starts or ends with `-`.
    HyphenAtLabelEdge,
    /// A character other than `a-z`, `0-9`, `-` (and the leading `*.`).
    InvalidCharacter,
    /// An internationalised name that UTS #46 cannot convert, or a bad `xn--` label.
    InvalidIdn,
    /// A `*` anywhere but as the whole leftmost label, or a wildcard directly under a
    /// top-level domain.
    InvalidWildcard,
    /// An IP address can only be validated with http-01 or tls-alpn-01.
    IpCannotUseDns01,
    /// A label is longer than 63 characters.
    LabelTooLong,
    /// The name is longer than 253 characters.
    NameTooLong,
    /// No challenge configuration matches the identifier.
    NoChallengeConfigured,
    /// The last label is all digits (neither an IP address nor a DNS name).
    NumericTld,
    /// A public CA cannot validate a single-label (intranet) name.
    SingleLabel,
    /// A wildcard can only be validated with dns-01.
    WildcardNeedsDns01,
}

/// An identifier that breaks a rule; the message names the identifier and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleViolation {
    /// The identifier as given (trimmed), or its normal form where it was already parsed.
    pub identifier: String,
    /// The rule broken.
    pub rule: Rule,
    /// One sentence naming the identifier and the rule, e.g.
    /// `"*.example.com": a wildcard needs dns-01 validation`.
    pub message: String,
}

impl RuleViolation {
    /// A violation of `rule` by `identifier`; `reason` is prefixed with the quoted identifier.
    pub fn new(identifier: &str, rule: Rule, reason: impl fmt::Display) -> Self {
        Self {
            identifier: identifier.to_string(),
            rule,
            message: format!("{identifier:?}: {reason}"),
        }
    }
}

/// What the CA a request goes to accepts, beyond the rules every name obeys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRules {
    /// A publicly trusted CA: single-label names are refused.
    pub public_ca: bool,
}

/// A change [`normalize`] made to a request that the user should hear about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The identifier concerned (normal form).
    pub identifier: String,
    /// What happened, in one sentence naming the identifier.
    pub message: String,
}

/// A request's identifiers after [`normalize`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Normalized {
    /// The identifiers, in the order first seen, without duplicates or covered names.
    pub identifiers: Vec<Identifier>,
    /// What was collapsed or dropped.
    pub notes: Vec<Note>,
}

/// Parses and checks every identifier of a request.
///
/// All violations are returned, not just the first. Duplicates (after normalisation) are
/// collapsed, and names covered by a wildcard in the same request are dropped, each with a
/// [`Note`]. The order in which identifiers were first seen is kept. A request without any
/// identifier is refused.
pub fn normalize(
    inputs: &[String],
    rules: &RequestRules,
) -> Result<Normalized, Vec<RuleViolation>> {
    let mut violations = Vec::new();
    let mut parsed: Vec<(&str, Identifier)> = Vec::with_capacity(inputs.len());
    for input in inputs {
        match Identifier::parse(input) {
            Ok(id) => {
                if rules.public_ca
                    && let Identifier::Dns(name) = &id
                    && !name.contains('.')
                {
                    violations.push(RuleViolation::new(
                        name,
                        Rule::SingleLabel,
                        "a public CA cannot validate a single-label intranet name; use a fully qualified name or a private CA",
                    ));
                    continue;
                }
                parsed.push((input.trim(), id));
            }
            Err(v) => violations.push(v),
        }
    }
    if inputs.is_empty() {
        violations.push(RuleViolation::new("", Rule::Empty, "the request names no identifier"));
    }
    if !violations.is_empty() {
        return Err(violations);
    }

    let mut notes = Vec::new();
    let mut seen = HashSet::new();
    let mut unique = Vec::with_capacity(parsed.len());
    for (given, id) in parsed {
        if seen.insert(id.clone()) {
            unique.push(id);
        } else {
            notes.push(Note {
                identifier: id.to_string(),
                message: format!(
                    "{given} is listed more than once (as {id}); the duplicate was dropped"
                ),
            });
        }
    }
    let wildcards: Vec<Identifier> = unique.iter().filter(|i| i.is_wildcard()).cloned().collect();
    let mut identifiers = Vec::with_capacity(unique.len());
    for id in unique {
        match wildcards.iter().find(|w| w.covers(&id)) {
            Some(w) => notes.push(Note {
                identifier: id.to_string(),
                message: format!("{id} is covered by {w} and was dropped"),
            }),
            None => identifiers.push(id),
        }
    }
    Ok(Normalized { identifiers, notes })
}

/// Is a challenge of `kind` able to validate `id`? Wildcards need dns-01; IP addresses
/// need http-01 or tls-alpn-01 (RFC 8738 §7).
pub fn challenge_allowed(id: &Identifier, kind: ChallengeKind) -> bool {
    match id {
        Identifier::Ip(_) => matches!(kind, ChallengeKind::Http01 | ChallengeKind::TlsAlpn01),
        Identifier::Dns(_) if id.is_wildcard() => kind == ChallengeKind::Dns01,
        Identifier::Dns(_) => true,
    }
}

/// Picks, for each identifier, the index of the first spec that matches it and whose
/// challenge type can validate it (see [`challenge_allowed`]).
///
/// Every identifier without a usable spec is reported: [`Rule::WildcardNeedsDns01`] or
/// [`Rule::IpCannotUseDns01`] when specs matched but none has an allowed type, and
/// [`Rule::NoChallengeConfigured`] when no spec matched at all.
pub fn assign_challenges(
    ids: &[Identifier],
    specs: &[ChallengeSpec],
) -> Result<Vec<(Identifier, usize)>, Vec<RuleViolation>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut violations = Vec::new();
    for id in ids {
        let mut matched = false;
        let chosen = specs.iter().position(|spec| {
            let m = spec.matches(id);
            matched |= m;
            m && challenge_allowed(id, spec.config.kind())
        });
        match chosen {
            Some(index) => out.push((id.clone(), index)),
            None => {
                let name = id.to_string();
                violations.push(match id {
                    _ if !matched => RuleViolation::new(
                        &name,
                        Rule::NoChallengeConfigured,
                        "no challenge configuration applies to it; add one or widen a domains= pattern",
                    ),
                    Identifier::Ip(_) => RuleViolation::new(
                        &name,
                        Rule::IpCannotUseDns01,
                        "an IP address cannot be validated with dns-01; use http-01 or tls-alpn-01",
                    ),
                    Identifier::Dns(_) => RuleViolation::new(
                        &name,
                        Rule::WildcardNeedsDns01,
                        "a wildcard needs dns-01 validation",
                    ),
                });
            }
        }
    }
    if violations.is_empty() { Ok(out) } else { Err(violations) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(n: &str) -> Identifier {
        Identifier::Dns(n.to_string())
    }

    fn rule_of(input: &str) -> Rule {
        match Identifier::parse(input) {
            Ok(id) => panic!("{input:?} was accepted as {id:?}"),
            Err(v) => v.rule,
        }
    }

    #[test]
    fn parses_ip_addresses() {
        assert_eq!(
            Identifier::parse(" 192.0.2.1 ").unwrap(),
            Identifier::Ip("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            Identifier::parse("2001:DB8::1").unwrap(),
            Identifier::Ip("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn normalises_case_whitespace_and_one_trailing_dot() {
        assert_eq!(Identifier::parse("  WWW.Example.COM.  ").unwrap(), dns("www.example.com"));
        assert_eq!(rule_of("www.example.com.."), Rule::EmptyLabel);
    }

    #[test]
    fn converts_idn_to_punycode() {
        assert_eq!(Identifier::parse("bücher.example").unwrap(), dns("xn--bcher-kva.example"));
        assert_eq!(Identifier::parse("*.BÜCHER.example.").unwrap(), dns("*.xn--bcher-kva.example"));
        assert_eq!(rule_of("xn--zz-.example"), Rule::HyphenAtLabelEdge);
        assert_eq!(rule_of("xn--a.example"), Rule::InvalidIdn);
    }

    #[test]
    fn accepts_wildcard_only_as_whole_leftmost_label() {
        assert_eq!(Identifier::parse("*.example.com").unwrap(), dns("*.example.com"));
        for bad in ["a.*.example.com", "*a.example.com", "**.x.com", "*", "w*w.example.com"] {
            let v = Identifier::parse(bad).unwrap_err();
            assert_eq!(v.rule, Rule::InvalidWildcard, "{bad}");
            assert!(
                v.message.contains("wildcard is allowed only as the whole leftmost label"),
                "{v}"
            );
            assert!(v.message.contains(bad), "{v}");
        }
        let v = Identifier::parse("*.com").unwrap_err();
        assert_eq!(v.rule, Rule::InvalidWildcard);
        assert!(v.message.contains("top-level domain"), "{v}");
    }

    #[test]
    fn refuses_bad_labels_and_names() {
        assert_eq!(rule_of(""), Rule::Empty);
        assert_eq!(rule_of(" . "), Rule::Empty);
        assert_eq!(rule_of(".example.com"), Rule::EmptyLabel);
        assert_eq!(rule_of("a_b.example.com"), Rule::InvalidCharacter);
        assert_eq!(rule_of("a b.example.com"), Rule::InvalidCharacter);
        assert_eq!(rule_of("-ab.example.com"), Rule::HyphenAtLabelEdge);
        assert_eq!(rule_of("ab-.example.com"), Rule::HyphenAtLabelEdge);
        assert_eq!(rule_of(&format!("{}.example.com", "a".repeat(64))), Rule::LabelTooLong);
        assert!(Identifier::parse(&format!("{}.example.com", "a".repeat(63))).is_ok());
        let long = vec!["abcdefghi"; 26].join("."); // 259 characters
        assert_eq!(rule_of(&long), Rule::NameTooLong);
        let max = format!("{}.abc", vec!["abcdefghi"; 25].join(".")); // 253
        assert_eq!(max.len(), 253);
        assert!(Identifier::parse(&max).is_ok());
        assert_eq!(rule_of("1.2.3.256"), Rule::NumericTld);
        let v = Identifier::parse("a_b.example.com").unwrap_err();
        assert_eq!(v.to_string(), v.message);
        assert!(v.message.starts_with("\"a_b.example.com\": "), "{v}");
    }

    #[test]
    fn single_label_names_are_refused_only_for_public_cas() {
        let inputs = vec!["srvdevapp01".to_string()];
        let ok = normalize(&inputs, &RequestRules { public_ca: false }).unwrap();
        assert_eq!(ok.identifiers, vec![dns("srvdevapp01")]);
        let err = normalize(&inputs, &RequestRules { public_ca: true }).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].rule, Rule::SingleLabel);
        assert!(err[0].message.contains("srvdevapp01"), "{}", err[0]);
        assert!(
            err[0].message.contains("public CA cannot validate a single-label intranet name"),
            "{}",
            err[0]
        );
    }

    #[test]
    fn normalize_collects_every_violation() {
        let inputs: Vec<String> = ["ok.example.com", "a..b", "*.com", "x_y.example.com"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let err = normalize(&inputs, &RequestRules::default()).unwrap_err();
        let rules: Vec<Rule> = err.iter().map(|v| v.rule).collect();
        assert_eq!(rules, vec![Rule::EmptyLabel, Rule::InvalidWildcard, Rule::InvalidCharacter]);
        assert_eq!(normalize(&[], &RequestRules::default()).unwrap_err()[0].rule, Rule::Empty);
    }

    #[test]
    fn normalize_collapses_duplicates_and_covered_names() {
        let inputs: Vec<String> = [
            "www.example.com",
            "Example.com",
            "*.example.com",
            "WWW.example.com.",
            "a.b.example.com",
            "192.0.2.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let n = normalize(&inputs, &RequestRules { public_ca: true }).unwrap();
        assert_eq!(
            n.identifiers,
            vec![
                dns("example.com"),
                dns("*.example.com"),
                dns("a.b.example.com"),
                Identifier::Ip("192.0.2.1".parse().unwrap()),
            ]
        );
        assert_eq!(n.notes.len(), 2);
        assert!(n.notes[0].message.contains("WWW.example.com."), "{:?}", n.notes);
        assert_eq!(
            n.notes[1].message,
            "www.example.com is covered by *.example.com and was dropped"
        );
    }

    #[test]
    fn wildcard_covers_exactly_one_label() {
        let w = dns("*.example.com");
        assert!(w.covers(&dns("www.example.com")));
        assert!(!w.covers(&dns("a.b.example.com")));
        assert!(!w.covers(&dns("example.com")));
        assert!(!w.covers(&dns("*.example.com")));
        assert!(!w.covers(&dns("wwwexample.com")));
        assert!(!dns("www.example.com").covers(&dns("www.example.com")));
    }

    #[test]
    fn authorization_name_and_acme_type() {
        assert_eq!(dns("*.example.com").authorization_name(), "example.com");
        assert_eq!(dns("example.com").authorization_name(), "example.com");
        let ip = Identifier::Ip("::1".parse().unwrap());
        assert_eq!(ip.authorization_name(), "::1");
        assert_eq!(ip.to_acme_type(), "ip");
        assert_eq!(dns("example.com").to_acme_type(), "dns");
    }

    #[test]
    fn serde_form_is_tagged() {
        let json = serde_json::to_string(&dns("example.com")).unwrap();
        assert_eq!(json, r#"{"type":"dns","value":"example.com"}"#);
        let ip: Identifier = serde_json::from_str(r#"{"type":"ip","value":"192.0.2.1"}"#).unwrap();
        assert_eq!(ip, Identifier::Ip("192.0.2.1".parse().unwrap()));
        assert_eq!(
            serde_json::to_string(&Rule::WildcardNeedsDns01).unwrap(),
            r#""wildcard-needs-dns01""#
        );
    }

    fn spec(s: &str) -> ChallengeSpec {
        ChallengeSpec::parse(s).unwrap()
    }

    #[test]
    fn assigns_first_matching_allowed_spec() {
        let specs = vec![
            spec("http-01:listen=127.0.0.1:80;domains=*.example.com,192.0.2.1"),
            spec("dns-01:exec=/bin/hook;domains=*.example.com"),
            spec("tls-alpn-01:listen=127.0.0.1:443"),
        ];
        let ids = vec![
            dns("www.example.com"),
            dns("*.example.com"),
            Identifier::Ip("192.0.2.1".parse().unwrap()),
            dns("other.org"),
        ];
        let got = assign_challenges(&ids, &specs).unwrap();
        let idx: Vec<usize> = got.iter().map(|(_, i)| *i).collect();
        assert_eq!(idx, vec![0, 1, 0, 2]);
        assert_eq!(got[1].0, dns("*.example.com"));
    }

    #[test]
    fn reports_every_identifier_without_a_usable_spec() {
        let specs = vec![
            spec("http-01:listen=127.0.0.1:80;domains=*.example.com"),
            spec("dns-01:exec=/bin/hook;domains=192.0.2.1,example.net"),
        ];
        let ids = vec![
            dns("*.example.com"),
            Identifier::Ip("192.0.2.1".parse().unwrap()),
            dns("other.org"),
            dns("example.net"),
        ];
        let err = assign_challenges(&ids, &specs).unwrap_err();
        let rules: Vec<Rule> = err.iter().map(|v| v.rule).collect();
        assert_eq!(
            rules,
            vec![Rule::WildcardNeedsDns01, Rule::IpCannotUseDns01, Rule::NoChallengeConfigured]
        );
        assert_eq!(err[0].to_string(), r#""*.example.com": a wildcard needs dns-01 validation"#);
        assert!(err[2].message.contains("other.org"), "{}", err[2]);
    }
}
