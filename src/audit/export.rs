//! Exports of the log for accountants and other tools: JSON Lines (the entries as
//! stored, one per line) or CSV (one row per entry, changes spelled out).

use std::io::Write;

use super::{Cursor, Query};
use crate::domain::audit::Entry;
use crate::store::{self, Db};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

const CSV_HEADER: &str = "index,time_utc,category,action,actor_kind,actor_initials,actor_name,\
authorised_by,record_type,record_id,record,changes,reason,request_id,ip";

/// Writes every entry the query matches, newest first; returns how many.
pub async fn export(
    db: &Db,
    query: &Query,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let mut q = query.clone();
    q.limit = super::MAX_PAGE;
    let mut count = 0;
    if format == Format::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    loop {
        let page = super::list(db, &q).await?;
        for entry in &page.entries {
            match format {
                Format::Jsonl => {
                    out.write_all(&entry.to_canonical_bytes())?;
                    out.write_all(b"\n")?;
                }
                Format::Csv => writeln!(out, "{}", csv_row(entry))?,
            }
            count += 1;
        }
        match page.next.as_deref().and_then(Cursor::parse) {
            Some(next) => q.cursor = Some(next),
            None => break,
        }
    }
    out.flush()?;
    Ok(count)
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
}

fn csv_row(e: &Entry) -> String {
    let time = jiff::Timestamp::from_microsecond(e.ts)
        .map_or_else(|_| e.ts.to_string(), |t| t.to_string());
    let changes: Vec<String> = e
        .diff
        .iter()
        .filter(|c| !(c.old.is_null() && c.new.is_null()))
        .map(|c| format!("{}: {} → {}", c.field, c.old, c.new))
        .collect();
    let req = e.req.clone().unwrap_or_default();
    let fields = [
        e.i.to_string(),
        time,
        e.cat.as_str().to_owned(),
        e.act.as_str().to_owned(),
        e.actor.kind.as_str().to_owned(),
        e.actor.initials.clone(),
        e.actor.name.clone(),
        e.auth
            .as_ref()
            .map_or(String::new(), |a| a.initials.clone()),
        e.rec.as_ref().map_or(String::new(), |r| r.kind.clone()),
        e.rec.as_ref().map_or(String::new(), |r| r.id.to_string()),
        e.rec.as_ref().map_or(String::new(), |r| r.label.clone()),
        changes.join("; "),
        e.reason.clone().unwrap_or_default(),
        req.id.unwrap_or_default(),
        req.ip.unwrap_or_default(),
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'` so that a
/// spreadsheet never runs a value as a formula (CSV injection).
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_quoting_and_formula_guard() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-5"), "'-5");
    }
}
