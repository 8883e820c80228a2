//! `renewals`: a simulated year of a large fleet under a CA's rate limits, driven by the
//! scheduler's own parts: `certhub_core::renewal::decide` says when each certificate is due,
//! `certhub_core::budget::Budget` admits orders under the CA's limits or says how long they
//! wait, `retry_delay` backs off after failures. The year holds the fleet's arrival (every
//! certificate taken over from elsewhere at once, so its first renewal is an ordinary order
//! that the limits count), a mass revocation (every renewal window jumps to now, noticed at
//! each certificate's next window fetch) and a CA outage. The orders per hour are drawn to
//! an SVG chart, and every limit is checked again from the log of placed orders,
//! independently of the budget that kept to them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certhub_core::budget::{Budget, RateLimits};
use certhub_core::renewal::{Decision, RenewalPolicy, RenewalWindow, decide, retry_delay};

#[derive(Debug, clap::Args)]
pub struct RenewalsArgs {
    /// Certificates in the fleet.
    #[arg(long, default_value_t = 100_000)]
    certs: usize,
    /// ACME accounts the fleet is spread over.
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    /// Registered domains the names are spread over.
    #[arg(long, default_value_t = 2_000)]
    domains: usize,
    /// Certificate lifetime, days.
    #[arg(long, default_value_t = 45)]
    lifetime_days: u64,
    /// Orders the hub can place a minute (renewal workers × 60 s / seconds an order takes).
    #[arg(long, default_value_t = 480)]
    per_minute: usize,
    /// Write the results here, as a Markdown section.
    #[arg(long)]
    out: PathBuf,
    /// Write the chart here (SVG).
    #[arg(long)]
    chart: PathBuf,
    /// How the Markdown refers to the chart.
    #[arg(long, default_value = "benchmarks-renewals.svg")]
    chart_link: String,
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const YEAR_DAYS: i64 = 365;
/// The CA's renewal info is fetched again every 6 hours (its usual Retry-After).
const ARI_EVERY: i64 = 6 * HOUR;
const REVOCATION_DAY: i64 = 120;
const OUTAGE_START: i64 = 240 * DAY + 12 * HOUR;
const OUTAGE_END: i64 = OUTAGE_START + 3 * HOUR;

struct Cert {
    account: usize,
    domain: String,
    not_before: i64,
    not_after: i64,
    window: (i64, i64),
    /// Issued through the hub: its renewals are ARI renewals.
    ours: bool,
    failures: u32,
    seed: u64,
}

/// One placed order.
struct Placed {
    at: i64,
    cert: usize,
    counted: bool,
    failed: bool,
}

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// splitmix64: a well-spread 64-bit value for each input, the same on every run.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The CA's window for a certificate: two days from two thirds of its life.
fn window_for(not_before: i64, life: i64) -> (i64, i64) {
    let start = not_before + life * 2 / 3;
    (start, start + 2 * DAY)
}

pub fn renewals(args: RenewalsArgs) -> anyhow::Result<()> {
    let life = args.lifetime_days as i64 * DAY;
    let limits = RateLimits::LETS_ENCRYPT;
    let mut budget = Budget::new(limits);
    // Time 0 is the start of the year; the fleet arrives with certificates issued elsewhere,
    // their expiry spread evenly over the next lifetime.
    let mut certs: Vec<Cert> = (0..args.certs)
        .map(|i| {
            let seed = mix(i as u64);
            let not_after = 1 + (seed % life as u64) as i64;
            let not_before = not_after - life;
            Cert {
                account: i % args.accounts,
                domain: format!("example{}.com", i % args.domains),
                not_before,
                not_after,
                window: window_for(not_before, life),
                ours: false,
                failures: 0,
                seed,
            }
        })
        .collect();
    let mut queue: BinaryHeap<Reverse<(i64, usize)>> =
        (0..certs.len()).map(|i| Reverse((0, i))).collect();
    let mut placed: Vec<Placed> = Vec::new();
    let mut expired_for = 0i64;
    let mut expired_certs = 0usize;
    let policy = RenewalPolicy::default();
    let revocation = REVOCATION_DAY * DAY;
    let mut revoked = false;
    let end = YEAR_DAYS * DAY;
    let mut now = 0;
    while now < end {
        if !revoked && now >= revocation {
            // Every window jumps to now; each certificate sees it at its next fetch.
            revoked = true;
            let all: Vec<usize> = (0..certs.len()).collect();
            queue.clear();
            for i in all {
                certs[i].window = (revocation - HOUR, revocation);
                queue.push(Reverse((revocation + (certs[i].seed % ARI_EVERY as u64) as i64, i)));
            }
        }
        let mut capacity = args.per_minute;
        // As a run of the scheduler does: what is due now, the soonest to expire first.
        let mut due = Vec::new();
        while let Some(&Reverse((t, i))) = queue.peek() {
            if t > now {
                break;
            }
            queue.pop();
            due.push(i);
        }
        due.sort_by_key(|&i| (certs[i].not_after, i));
        for i in due {
            let c = &mut certs[i];
            let window = RenewalWindow { start: at(c.window.0), end: at(c.window.1) };
            let next = match decide(
                at(c.not_before),
                at(c.not_after),
                Some(window),
                policy,
                at(now),
                c.seed,
            ) {
                Decision::RenewAt(t, _) => ms(t).min(now + ARI_EVERY),
                Decision::RenewNow(_) if capacity == 0 => now + MIN,
                Decision::RenewNow(_) => {
                    let names = [c.domain.clone()];
                    let account = format!("acct{}", c.account);
                    match budget.admit(now, &account, &names, c.ours) {
                        Err(wait) => wait.until,
                        Ok(()) => {
                            capacity -= 1;
                            let failed = (OUTAGE_START..OUTAGE_END).contains(&now);
                            placed.push(Placed { at: now, cert: i, counted: !c.ours, failed });
                            if failed {
                                c.failures += 1;
                                now + retry_delay(c.failures, None).as_millis() as i64
                            } else {
                                if now > c.not_after {
                                    expired_certs += 1;
                                    expired_for = expired_for.max(now - c.not_after);
                                }
                                c.not_before = now;
                                c.not_after = now + life;
                                c.window = window_for(now, life);
                                c.ours = true;
                                c.failures = 0;
                                c.seed = mix(c.seed);
                                now + ARI_EVERY
                            }
                        }
                    }
                }
            };
            queue.push(Reverse((next.max(now + MIN), i)));
        }
        now += MIN;
    }

    // Every limit, checked again from the log: the most orders any account placed in any
    // 3 hours, and certificates for any registered domain in any 7 days (counted orders).
    let counted: Vec<&Placed> = placed.iter().filter(|p| p.counted).collect();
    let most_in = |key: &dyn Fn(&Placed) -> usize, keys: usize, window: i64| -> usize {
        let mut per: Vec<Vec<i64>> = vec![Vec::new(); keys];
        for p in &counted {
            per[key(p)].push(p.at);
        }
        per.iter()
            .map(|times| {
                let mut best = 0;
                let mut lo = 0;
                for hi in 0..times.len() {
                    while times[hi] - times[lo] >= window {
                        lo += 1;
                    }
                    best = best.max(hi - lo + 1);
                }
                best
            })
            .max()
            .unwrap_or(0)
    };
    let orders_limit = limits.orders_per_account.expect("Let's Encrypt limits orders");
    let domain_limit = limits.certs_per_domain.expect("Let's Encrypt limits domains");
    let accounts = args.accounts;
    let domains = args.domains;
    let most_orders =
        most_in(&|p| p.cert % accounts, accounts, orders_limit.window_secs as i64 * 1000);
    let most_domain =
        most_in(&|p| p.cert % domains, domains, domain_limit.window_secs as i64 * 1000);

    let hours = (end / HOUR) as usize;
    let mut per_hour = vec![(0usize, 0usize, 0usize); hours];
    for p in &placed {
        let h = (p.at / HOUR) as usize;
        if p.failed {
            per_hour[h].2 += 1;
        } else if p.counted {
            per_hour[h].0 += 1;
        } else {
            per_hour[h].1 += 1;
        }
    }
    std::fs::write(&args.chart, chart(&per_hour))?;
    if std::env::var_os("CERTHUB_BENCH_DAYS").is_some() {
        for d in 0..YEAR_DAYS as usize {
            let day: usize = per_hour[d * 24..(d + 1) * 24].iter().map(|h| h.0 + h.1 + h.2).sum();
            eprintln!("day {d}: {day}");
        }
    }

    let total = |f: &dyn Fn(&(usize, usize, usize)) -> usize| per_hour.iter().map(f).sum::<usize>();
    let peak = |from: i64, to: i64| {
        per_hour[(from / HOUR) as usize..(to / HOUR) as usize]
            .iter()
            .map(|h| h.0 + h.1 + h.2)
            .max()
            .unwrap_or(0)
    };
    let steady = total(&|h| h.0 + h.1) as f64 / hours as f64;
    let mut md = String::new();
    writeln!(
        md,
        "{} certificates with {}-day lifetimes under {} accounts and {} registered domains, \
         for {YEAR_DAYS} days, with Let's Encrypt's limits ({}). The scheduler's own parts \
         decide (`renewal::decide` with the CA's window: two days from two thirds of the \
         life, fetched every 6 hours), keep the budget (`budget::Budget`) and back off \
         (`retry_delay`); the hub places at most {} orders a minute. Day 0: the fleet \
         arrives with certificates issued elsewhere, so each first renewal is an ordinary \
         order the limits count; later ones are ARI renewals, exempt. Day {REVOCATION_DAY}: \
         a mass revocation, every window jumps to now. Day 240, 12:00 to 15:00: the CA is \
         down and every order fails.\n",
        args.certs, args.lifetime_days, args.accounts, args.domains, limits, args.per_minute
    )?;
    writeln!(md, "![Orders per hour over the year]({})\n", args.chart_link)?;
    writeln!(md, "| | figure | limit |\n|---|---|---|")?;
    writeln!(
        md,
        "| most orders counted for one account in any {} | {most_orders} | {} |",
        window_words(orders_limit.window_secs),
        orders_limit.count
    )?;
    writeln!(
        md,
        "| most certificates counted for one registered domain in any {} | {most_domain} | {} |",
        window_words(domain_limit.window_secs),
        domain_limit.count
    )?;
    writeln!(md, "| orders placed in the year (ARI renewals, exempt) | {} | |", total(&|h| h.1))?;
    writeln!(md, "| orders counted against the limits | {} | |", total(&|h| h.0))?;
    writeln!(md, "| orders that failed in the outage | {} | |", total(&|h| h.2))?;
    writeln!(md, "| average orders per hour | {steady:.0} | |")?;
    writeln!(md, "| busiest hour of the arrival (days 0–3) | {} | |", peak(0, 3 * DAY))?;
    writeln!(
        md,
        "| busiest hour of the mass revocation (day {REVOCATION_DAY}) | {} | |",
        peak(revocation, revocation + DAY)
    )?;
    writeln!(
        md,
        "| busiest hour after the outage (day 240) | {} | |",
        peak(OUTAGE_END, OUTAGE_END + DAY)
    )?;
    writeln!(md, "| busiest hour otherwise (days 10–110) | {} | |", peak(10 * DAY, 110 * DAY))?;
    writeln!(
        md,
        "| renewals after expiry | {expired_certs} (longest {:.1} h late) | 0 |",
        expired_for as f64 / HOUR as f64
    )?;
    std::fs::write(&args.out, md)?;
    eprintln!(
        "renewals: {} placed, most {most_orders} per account in 3h, {most_domain} per domain \
         in 7d, {expired_certs} renewed after expiry",
        placed.len()
    );
    anyhow::ensure!(most_orders <= orders_limit.count as usize, "the order limit was exceeded");
    anyhow::ensure!(most_domain <= domain_limit.count as usize, "the domain limit was exceeded");
    Ok(())
}

fn window_words(secs: u64) -> String {
    match secs {
        s if s.is_multiple_of(86_400) => format!("{} days", s / 86_400),
        s => format!("{} hours", s / 3_600),
    }
}

/// Orders per hour over the year on a log scale: counted against the limits, ARI renewals
/// and failed, stacked.
fn chart(per_hour: &[(usize, usize, usize)]) -> String {
    let (w, h, left, top, bottom) = (960.0, 320.0, 56.0, 16.0, 40.0);
    let plot_w = w - left - 16.0;
    let plot_h = h - top - bottom;
    let max_log = 5.0; // 100,000 an hour
    let y = |v: f64| top + plot_h - plot_h * ((v.max(1.0)).log10() / max_log).min(1.0);
    let x = |hour: usize| left + plot_w * hour as f64 / per_hour.len() as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>"
    );
    for p in 0..=5 {
        let v = 10f64.powi(p);
        let yy = y(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            yy + 4.0,
            match p {
                0 => "1".to_string(),
                1 => "10".into(),
                2 => "100".into(),
                3 => "1k".into(),
                4 => "10k".into(),
                _ => "100k".into(),
            }
        );
    }
    for day in (0..=YEAR_DAYS).step_by(30) {
        let xx = x((day * 24) as usize);
        let _ = writeln!(
            svg,
            "<text x=\"{xx:.1}\" y=\"{}\" text-anchor=\"middle\">day {day}</text>",
            h - bottom + 16.0
        );
    }
    type Value = fn(&(usize, usize, usize)) -> usize;
    let series: [(&str, &str, Value); 3] = [
        ("failed (CA down)", "#d62728", |p| p.0 + p.1 + p.2),
        ("ARI renewals (exempt)", "#1f77b4", |p| p.0 + p.1),
        ("counted against the limits", "#ff7f0e", |p| p.0),
    ];
    for (n, (label, colour, value)) in series.iter().enumerate() {
        let mut path = format!("M{left:.1},{:.1}", y(0.0));
        for (hour, p) in per_hour.iter().enumerate() {
            let v = value(p) as f64;
            let yy = if v == 0.0 { y(0.0) } else { y(v) };
            let _ = write!(path, " L{:.1},{yy:.1} L{:.1},{yy:.1}", x(hour), x(hour + 1));
        }
        let _ = write!(path, " L{:.1},{:.1} Z", x(per_hour.len()), y(0.0));
        let _ = writeln!(svg, "<path d=\"{path}\" fill=\"{colour}\" stroke=\"none\"/>");
        let lx = left + 10.0 + 210.0 * n as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"{}\">{label}</text>",
            h - 14.0,
            lx + 14.0,
            h - 5.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">orders per hour</text>",
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    svg.push_str("</svg>\n");
    svg
}
