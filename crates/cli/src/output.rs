//! Small helpers for human and JSON output.

/// Prints rows as left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints `value` as indented JSON.
pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Returns `result`, after writing `audited` (action and target) to the audit log as
/// `cli:USER` when it succeeded.
pub async fn audit_done(
    store: &certhub_store::Store,
    result: anyhow::Result<()>,
    audited: Option<(&str, String)>,
) -> anyhow::Result<()> {
    if let (Ok(()), Some((action, name))) = (&result, audited) {
        certhub_engine::Actor::cli().audit(store, action, &name, None).await?;
    }
    result
}
