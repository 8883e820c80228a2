//! Waiting until a TXT value is visible on every authoritative name server of its zone.
//!
//! The zone is found from the SOA that a resolver returns for the record name; its NS
//! records are resolved to addresses, and each server is asked directly (no recursion)
//! until all of them answer with the value. A CNAME on `_acme-challenge` is followed first.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use certhub_core::{Propagation, SolverError};
use hickory_proto::rr::{Name, RData, RecordType};

use super::wire::{exchange, query, soa_owner};

/// How the propagation check runs.
#[derive(Debug, Clone)]
pub struct DnsCheckConfig {
    /// Resolver for finding the zone and its servers; `None` is the system's (/etc/resolv.conf).
    pub resolver: Option<SocketAddr>,
    /// Port on which the authoritative servers are asked.
    pub authoritative_port: u16,
    /// How long to wait for the value to appear everywhere.
    pub timeout: Duration,
    /// Timeout of one query.
    pub query_timeout: Duration,
    /// How a record is known to be there: every authoritative server (the default), a
    /// resolver, or a wait without lookups.
    pub propagation: Propagation,
}

impl Default for DnsCheckConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            authoritative_port: 53,
            timeout: Duration::from_secs(120),
            query_timeout: Duration::from_secs(3),
            propagation: Propagation::Check,
        }
    }
}

/// Checks that records are visible on the authoritative servers.
#[derive(Debug, Clone)]
pub struct PropagationChecker {
    config: DnsCheckConfig,
    resolver: SocketAddr,
}

fn dns_err(e: impl std::fmt::Display) -> SolverError {
    SolverError::Dns(e.to_string())
}

pub(crate) fn fqdn(name: &str) -> Result<Name, SolverError> {
    let mut n = Name::from_ascii(name.trim_end_matches('.'))
        .map_err(|e| dns_err(format!("{name:?} is not a DNS name: {e}")))?;
    n.set_fqdn(true);
    Ok(n)
}

fn system_resolver() -> SocketAddr {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|conf| {
            conf.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .find_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 53)))
}

impl PropagationChecker {
    /// A checker with `config`.
    pub fn new(config: DnsCheckConfig) -> Self {
        let resolver = match config.propagation {
            Propagation::Resolver { address } => address,
            _ => config.resolver.unwrap_or_else(system_resolver),
        };
        Self { config, resolver }
    }

    /// The resolver asked.
    pub fn resolver(&self) -> std::net::SocketAddr {
        self.resolver
    }

    /// The configuration.
    pub fn config(&self) -> &DnsCheckConfig {
        &self.config
    }

    /// This checker with another overall timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Where the record for `name` really lives: `name`, or the end of its CNAME chain.
    /// With `propagation=wait` nothing is looked up: `name` itself.
    pub async fn follow_cname(&self, name: &str) -> Result<Name, SolverError> {
        let mut current = fqdn(name)?;
        if let Propagation::Wait { .. } = self.config.propagation {
            return Ok(current);
        }
        for _ in 0..8 {
            let answer = exchange(
                self.resolver,
                &query(&current, RecordType::CNAME, true),
                self.config.query_timeout,
            )
            .await
            .map_err(dns_err)?;
            let target = answer.answers.iter().find_map(|r| match &r.data {
                RData::CNAME(c) if r.name == current => Some(c.0.clone()),
                _ => None,
            });
            match target {
                Some(t) => current = t,
                None => return Ok(current),
            }
        }
        Err(dns_err(format!("the CNAME chain from {name} is longer than 8 links")))
    }

    /// The zone apex holding `name`: the owner of the SOA record the resolver answers with.
    pub async fn zone_of(&self, name: &Name) -> Result<Name, SolverError> {
        let timeout = self.config.query_timeout;
        let answer = exchange(self.resolver, &query(name, RecordType::SOA, true), timeout)
            .await
            .map_err(dns_err)?;
        soa_owner(&answer).ok_or_else(|| {
            dns_err(format!(
                "no zone found for {name}: the resolver {} returned no SOA; if the zone cannot \
                 be seen from here (split-horizon DNS), check through another resolver with \
                 ;propagation=resolver:HOST:PORT, or only wait with ;propagation=wait:SECONDS",
                self.resolver
            ))
        })
    }

    /// The zone apex holding `name` and the addresses of its authoritative servers.
    pub async fn authoritative_servers(
        &self,
        name: &Name,
    ) -> Result<(Name, Vec<SocketAddr>), SolverError> {
        let timeout = self.config.query_timeout;
        let zone = self.zone_of(name).await?;
        let ns = exchange(self.resolver, &query(&zone, RecordType::NS, true), timeout)
            .await
            .map_err(dns_err)?;
        let names: BTreeSet<Name> = ns
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(n) => Some(n.0.clone()),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Err(dns_err(format!("the zone {zone} has no NS records")));
        }
        let mut addrs = BTreeSet::new();
        for ns_name in &names {
            // Glue in the additional section saves a round trip.
            let mut found = false;
            for r in &ns.additionals {
                if &r.name == ns_name {
                    match &r.data {
                        RData::A(a) => {
                            addrs.insert(SocketAddr::new(
                                a.0.into(),
                                self.config.authoritative_port,
                            ));
                            found = true;
                        }
                        RData::AAAA(a) => {
                            addrs.insert(SocketAddr::new(
                                a.0.into(),
                                self.config.authoritative_port,
                            ));
                            found = true;
                        }
                        _ => {}
                    }
                }
            }
            if found {
                continue;
            }
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Ok(a) = exchange(self.resolver, &query(ns_name, rtype, true), timeout).await
                {
                    for r in a.answers {
                        match r.data {
                            RData::A(a) => {
                                addrs.insert(SocketAddr::new(
                                    a.0.into(),
                                    self.config.authoritative_port,
                                ));
                            }
                            RData::AAAA(a) => {
                                addrs.insert(SocketAddr::new(
                                    a.0.into(),
                                    self.config.authoritative_port,
                                ));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        if addrs.is_empty() {
            return Err(dns_err(format!("no address found for the name servers of {zone}")));
        }
        Ok((zone, addrs.into_iter().collect()))
    }

    /// The addresses (A and AAAA) of `name`, as the resolver answers.
    pub async fn addresses(&self, name: &str) -> Result<Vec<std::net::IpAddr>, SolverError> {
        let name = fqdn(name)?;
        let mut out = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            let answer =
                exchange(self.resolver, &query(&name, rtype, true), self.config.query_timeout)
                    .await
                    .map_err(dns_err)?;
            for r in answer.answers {
                match r.data {
                    RData::A(a) => out.push(a.0.into()),
                    RData::AAAA(a) => out.push(a.0.into()),
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// The TXT values `server` holds for `name`, asked without recursion.
    pub async fn txt_at(&self, server: SocketAddr, name: &Name) -> Result<Vec<String>, String> {
        let answer =
            exchange(server, &query(name, RecordType::TXT, false), self.config.query_timeout)
                .await?;
        Ok(answer
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// Waits until `value` is a TXT value of `name` on every authoritative server, or as
    /// the configuration's `propagation` says otherwise.
    pub async fn wait_visible(&self, name: &str, value: &str) -> Result<(), SolverError> {
        match self.config.propagation {
            Propagation::Check => self.wait_authoritative(name, value).await,
            Propagation::Wait { seconds } => {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                Ok(())
            }
            Propagation::Resolver { address } => self.wait_resolver(address, name, value).await,
        }
    }

    /// Waits until the resolver at `address` answers `value` for `name`.
    async fn wait_resolver(
        &self,
        address: SocketAddr,
        name: &str,
        value: &str,
    ) -> Result<(), SolverError> {
        let start = Instant::now();
        let target = fqdn(name)?;
        let mut delay = Duration::from_millis(50);
        loop {
            let said = match exchange(
                address,
                &query(&target, RecordType::TXT, true),
                self.config.query_timeout,
            )
            .await
            {
                Ok(answer) => {
                    let found = answer.answers.iter().any(|r| match &r.data {
                        RData::TXT(t) => {
                            let joined: String = t
                                .txt_data
                                .iter()
                                .map(|p| String::from_utf8_lossy(p).into_owned())
                                .collect();
                            joined == value
                        }
                        _ => false,
                    });
                    if found {
                        return Ok(());
                    }
                    "it does not answer with the value yet".to_string()
                }
                Err(e) => e,
            };
            if start.elapsed() + delay > self.config.timeout {
                return Err(SolverError::NotPropagated(format!(
                    "the TXT record {target} was not visible through the resolver {address} \
                     (;propagation=resolver:{address}) after {}s: {said}; wait longer with \
                     ;propagation-timeout=SECONDS, or only wait with ;propagation=wait:SECONDS",
                    self.config.timeout.as_secs()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn wait_authoritative(&self, name: &str, value: &str) -> Result<(), SolverError> {
        let start = Instant::now();
        let target = self.follow_cname(name).await?;
        let (zone, servers) = self.authoritative_servers(&target).await?;
        let mut pending: Vec<SocketAddr> = servers;
        let mut delay = Duration::from_millis(50);
        let mut last_error = String::new();
        loop {
            let mut still = Vec::new();
            for server in pending {
                match self.txt_at(server, &target).await {
                    Ok(values) if values.iter().any(|v| v == value) => {}
                    Ok(_) => still.push(server),
                    Err(e) => {
                        last_error = e;
                        still.push(server);
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                tracing::debug!(%target, %zone, elapsed = ?start.elapsed(), "TXT record visible on every authoritative server");
                return Ok(());
            }
            if start.elapsed() + delay > self.config.timeout {
                let list: Vec<String> = pending.iter().map(ToString::to_string).collect();
                let via = if target.to_ascii().trim_end_matches('.') == name.trim_end_matches('.') {
                    String::new()
                } else {
                    format!(" (CNAME target of {name})")
                };
                let cause = if last_error.is_empty() {
                    String::new()
                } else {
                    format!("; last error: {last_error}")
                };
                return Err(SolverError::NotPropagated(format!(
                    "the TXT record {target}{via} was not visible on {} of zone {zone} after \
                     {}s{cause}; wait longer with ;propagation-timeout=SECONDS, check through a \
                     resolver with ;propagation=resolver:HOST:PORT, or only wait with \
                     ;propagation=wait:SECONDS",
                    list.join(", "),
                    self.config.timeout.as_secs()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}
