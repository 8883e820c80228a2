//! The certificate list and the dashboard overview, filtered, paged and counted by the database.

use std::time::Duration;

use crate::common::{Db, account, cert, issued};

on_both_backends!(
    the_list_is_filtered_and_paged_by_the_database,
    the_dashboard_overview_counts_what_the_list_shows
);

async fn the_list_is_filtered_and_paged_by_the_database(db: Db) {
    use certhub_store::CertFilter;
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("account");
    let now = 1_708_000_000_000;
    for (name, host, state) in [
        ("api", "API.example.test", "valid"),
        ("blog", "blog.example.test", "valid"),
        ("cdn", "cdn_1.example.test", "valid"),
        ("docs", "docs.example.test", "pending"),
        ("edge", "100%.example.test", "failing"),
    ] {
        let mut c = cert(name, "acme");
        c.identifiers = vec![certhub_core::Identifier::Dns(host.to_string())];
        c.state = state.parse().unwrap();
        store.insert_cert(&c, None).await.expect("cert");
    }
    // api: two issued, the latest counts; blog: expired; cdn: revoked.
    store.insert_issued(&issued("api", "01"), None).await.expect("issued");
    let mut later = issued("api", "02");
    later.not_after = now + 86_400_000;
    store.insert_issued(&later, None).await.expect("issued");
    store.insert_issued(&issued("blog", "03"), None).await.expect("issued");
    let cdn = store.insert_issued(&issued("cdn", "04"), None).await.expect("issued");
    store.set_revoked(cdn, 1, None, None).await.expect("revoke");

    let list = |filter: CertFilter| {
        let store = store.clone();
        async move {
            let (total, items) = store.cert_summaries(&filter, now).await.expect("list");
            let names: Vec<String> = items.iter().map(|c| c.name.clone()).collect();
            (total, names, items)
        }
    };
    let (total, names, items) = list(CertFilter::default()).await;
    assert_eq!(total, 5);
    assert_eq!(names, ["api", "blog", "cdn", "docs", "edge"]);
    assert_eq!(items[0].latest.as_ref().expect("issued").serial_hex, "02", "the latest");
    let states: Vec<String> = items.iter().map(|c| c.effective_state(now).to_string()).collect();
    assert_eq!(states, ["valid", "expired", "revoked", "pending", "failing"]);
    assert_eq!(items[3].latest, None);
    let full = store.cert("api").await.expect("read").expect("present");
    let latest = store.latest_issued("api").await.expect("read");
    assert_eq!(items[0], certhub_store::CertSummary::of(&full, latest.as_ref()));
    // One page, with the total before paging.
    let (total, names, _) =
        list(CertFilter { offset: 2, limit: Some(2), ..CertFilter::default() }).await;
    assert_eq!((total, names), (5, vec!["cdn".to_string(), "docs".into()]));
    let (total, names, _) =
        list(CertFilter { offset: 10, limit: Some(2), ..CertFilter::default() }).await;
    assert_eq!((total, names.len()), (5, 0));
    // The state the user sees, not the stored one.
    for (state, want) in [("valid", "api"), ("expired", "blog"), ("revoked", "cdn")] {
        let filter = CertFilter { state: Some(state.into()), ..CertFilter::default() };
        let (total, names, _) = list(filter).await;
        assert_eq!((total, names), (1, vec![want.to_string()]), "{state}");
    }
    // Names and identifier values, in any case; LIKE's wildcards are plain characters.
    for (search, want) in [
        ("api.EXAMPLE", &["api"][..]),
        ("LOG", &["blog"][..]),
        ("n_1", &["cdn"][..]),
        ("_", &["cdn"][..]),
        ("100%", &["edge"][..]),
        ("%", &["edge"][..]),
        ("dns", &[][..]),
        ("  ", &["api", "blog", "cdn", "docs", "edge"][..]),
    ] {
        let filter = CertFilter { search: Some(search.into()), ..CertFilter::default() };
        let (total, names, _) = list(filter).await;
        assert_eq!(names, want, "{search:?}");
        assert_eq!(total as usize, want.len());
    }
    let filter = CertFilter {
        state: Some("valid".into()),
        search: Some("example".into()),
        ..CertFilter::default()
    };
    assert_eq!(list(filter).await.1, ["api"]);
    // The total of an unfiltered list is kept by the database as certificates come and go.
    store.delete_cert("edge", None).await.expect("delete");
    assert_eq!(list(CertFilter::default()).await.0, 4);
    store.insert_cert(&cert("fresh", "acme"), None).await.expect("cert");
    assert_eq!(list(CertFilter::default()).await.0, 5);
}

/// The overview the database counts equals one worked out from the whole list with the
/// renewal decision itself: states, expiries and planned renewals per week, by the
/// certificate's policy or the hub's, and the certificates that need attention in order.
async fn the_dashboard_overview_counts_what_the_list_shows(db: Db) {
    use certhub_core::renewal::{Decision, RenewalPolicy, decide};
    use certhub_store::{CertFilter, OverviewSpec};
    use std::time::UNIX_EPOCH;

    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("account");
    let now = 1_708_000_000_000_i64;
    let day = 86_400_000;
    let policies = [None, Some("30d"), Some("50%"), Some("90%"), Some("5d"), Some("bogus")];
    let lifetimes = [6, 45, 90, 200];
    for k in 0..60_i64 {
        let mut c = cert(&format!("c{k:02}"), "acme");
        c.renewal_policy = policies[k as usize % policies.len()].map(Into::into);
        c.state = match k % 10 {
            7 => "failing",
            8 => "pending",
            _ => "valid",
        }
        .parse()
        .unwrap();
        if k % 13 == 5 {
            c.last_error = Some("the CA said no".into());
        }
        store.insert_cert(&c, None).await.expect("cert");
        if k % 10 == 8 {
            continue; // never issued
        }
        let lifetime = lifetimes[k as usize % lifetimes.len()] * day;
        let mut i = issued(&c.name, &format!("{k:02x}"));
        // Spread over the lifetime: some just issued, some near the end, some past it.
        i.not_before = now - (k * 7 % 23) * lifetime / 20;
        i.not_after = i.not_before + lifetime;
        let id = store.insert_issued(&i, None).await.expect("issued");
        if k % 17 == 3 {
            store.set_revoked(id, 1, None, None).await.expect("revoke");
        }
    }
    let default: RenewalPolicy = "70%".parse().expect("policy");
    let spec = OverviewSpec { now, weeks: 12, soon: 30 * day, attention_limit: 10 };
    let got = store.overview(spec, default).await.expect("overview");

    let (_, all) = store.cert_summaries(&CertFilter::default(), now).await.expect("list");
    let at = |ms: i64| UNIX_EPOCH + Duration::from_millis(ms as u64);
    let week = 7 * day;
    let mut states: Vec<(String, u64)> = Vec::new();
    let (mut expiring, mut renewing) = (vec![0_u64; 12], vec![0_u64; 12]);
    let mut attention = Vec::new();
    for c in &all {
        let state = c.effective_state(now).to_string();
        match states.iter_mut().find(|(s, _)| *s == state) {
            Some((_, n)) => *n += 1,
            None => states.push((state.clone(), 1)),
        }
        let latest = c.latest.as_ref();
        if let Some(i) = latest.filter(|_| state == "valid") {
            if let Some(slot) = usize::try_from((i.not_after - now) / week).ok().filter(|w| *w < 12)
            {
                expiring[slot] += 1;
            }
            let policy = match c.renewal_policy.as_deref() {
                Some(own) => own.parse::<RenewalPolicy>().ok(),
                None => Some(default),
            };
            if let Some(policy) = policy {
                let planned =
                    match decide(at(i.not_before), at(i.not_after), None, policy, at(now), 0) {
                        Decision::RenewNow(_) => now,
                        Decision::RenewAt(t, _) => {
                            t.duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
                        }
                    };
                let slot = ((planned - now).max(0) / week) as usize;
                if slot < 12 {
                    renewing[slot] += 1;
                }
            }
        }
        let soon = latest.is_some_and(|i| i.not_after - now < 30 * day);
        if matches!(state.as_str(), "failing" | "expired" | "revoked")
            || (state == "valid" && soon)
            || c.last_error.is_some()
        {
            let rank = ["failing", "expired", "revoked"].iter().position(|s| *s == state);
            let end = latest.map_or(i64::MAX, |i| i.not_after);
            attention.push(((rank.unwrap_or(3), end, c.name.clone()), c.clone()));
        }
    }
    states.sort();
    attention.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.total, 60);
    assert_eq!(got.states, states);
    assert_eq!(got.expiring, expiring);
    assert_eq!(got.renewing, renewing);
    assert!(renewing.iter().sum::<u64>() > 10, "the fleet plans renewals: {renewing:?}");
    assert!(states.len() >= 5, "every kind of state is there: {states:?}");
    assert_eq!(got.attention_total, attention.len() as u64);
    assert!(attention.len() > 10, "more need attention than are listed");
    let want: Vec<_> = attention.into_iter().take(10).map(|(_, c)| c).collect();
    assert_eq!(got.attention, want);
}
