//! Status notes: the read-only lines the system writes on a record's Notes tab when
//! something important happens to it. Which events a change is, and how they read.

use std::collections::BTreeMap;

use jiff::{Timestamp, tz::TimeZone};
use serde_json::Value;

use super::{
    audit::Action,
    diff::Change,
    field::FieldType,
    reason::prices_changed,
    record::{Fields, RecordKind},
    stamp,
};

/// Names of configurable-list entries, by id, for the wording.
pub type Names = BTreeMap<i64, String>;

/// What the notes say about a change, in order; empty when it is not a status event.
pub fn derive(
    kind: RecordKind,
    action: Action,
    before: Option<&Fields>,
    after: &Fields,
    names: &Names,
    tz: &TimeZone,
    reason: Option<&str>,
) -> Vec<String> {
    let empty = Fields::new();
    let old = before.unwrap_or(&empty);
    let changed = |f: &str| before.is_some() && old.get(f) != after.get(f);
    let flag = |f: &str| after.get(f) == Some(&Value::Bool(true));
    let name = |f: &str, fields: &Fields| quoted(fields.get(f), names);
    let with_reason = |text: String| match reason {
        Some(r) => format!("{text}. Reason: {r}"),
        None => text,
    };
    let title = kind.title();
    let mut notes = Vec::new();

    match action {
        Action::Post => notes.push(format!("{title} posted")),
        Action::Unlock => notes.push(with_reason(format!("{title} unlocked"))),
        Action::Void => notes.push(with_reason(format!(
            "{} of {} voided",
            payment_word(after),
            money(after.get("amount_cents"))
        ))),
        Action::Create | Action::Update => {}
        _ => return notes,
    }
    if !matches!(action, Action::Create | Action::Update) {
        return notes;
    }

    let status_field = match kind {
        RecordKind::Client => Some("client_status_id"),
        RecordKind::Session => Some("session_status_id"),
        RecordKind::Appointment => Some("appointment_status_id"),
        RecordKind::Invoice => Some("invoice_status_id"),
        _ => None,
    };
    let due = match after.get("status_due").and_then(Value::as_str) {
        Some(d) => d
            .parse::<jiff::civil::Date>()
            .map(|d| format!(" (due {})", stamp::date(d)))
            .unwrap_or_default(),
        None => String::new(),
    };
    let span = |fields: &Fields| -> Option<String> {
        let at = |f: &str| fields.get(f)?.as_str()?.parse::<Timestamp>().ok();
        Some(stamp::span(at("starts_at")?, at("ends_at")?, tz))
    };

    if action == Action::Create {
        match kind {
            RecordKind::Session => notes.push(format!(
                "Session booked for {}; status {}{due}",
                span(after).unwrap_or_default(),
                name("session_status_id", after)
            )),
            RecordKind::Appointment => notes.push(format!(
                "Appointment booked for {}",
                span(after).unwrap_or_default()
            )),
            RecordKind::Payment => notes.push(format!(
                "{} of {} by {} recorded",
                payment_word(after),
                money(after.get("amount_cents").map(abs).as_ref()),
                plain(after.get("payment_method_id"), names)
            )),
            _ => {}
        }
        if let Some(f) = status_field
            && kind != RecordKind::Session
            && after.get(f).is_some_and(|v| !v.is_null())
        {
            notes.push(format!("Status set to {}", name(f, after)));
        }
        if kind == RecordKind::Invoice
            && let Some(d) = discount(after)
        {
            notes.push(d);
        }
        return notes;
    }

    if let Some(f) = status_field
        && changed(f)
    {
        notes.push(format!(
            "Status changed from {} to {}{}",
            name(f, old),
            name(f, after),
            if kind == RecordKind::Session {
                due.as_str()
            } else {
                ""
            }
        ));
    }
    let moved = changed("starts_at") || changed("ends_at");
    if moved && matches!(kind, RecordKind::Session | RecordKind::Appointment) {
        notes.push(with_reason(format!(
            "{title} moved from {} to {}",
            span(old).unwrap_or_default(),
            span(after).unwrap_or_default()
        )));
    }
    if kind == RecordKind::Session {
        let toggles = [
            (
                "cancelled",
                "Session cancelled",
                "Session cancellation undone",
            ),
            ("on_hold", "Session put on hold", "Session taken off hold"),
        ];
        for (f, on, off) in toggles {
            if changed(f) {
                notes.push(with_reason(if flag(f) { on } else { off }.to_owned()));
            }
        }
        if changed("confirmed") {
            notes.push(match (flag("confirmed"), moved) {
                (true, _) => "Session confirmed".to_owned(),
                (false, true) => "Confirmation cleared by the reschedule".to_owned(),
                (false, false) => "Session unconfirmed".to_owned(),
            });
        }
    }
    if kind == RecordKind::Payment {
        let mut parts = Vec::new();
        if changed("amount_cents") {
            parts.push(format!(
                "amount {} → {}",
                money(old.get("amount_cents")),
                money(after.get("amount_cents"))
            ));
        }
        if changed("payment_method_id") {
            parts.push(format!(
                "method {} → {}",
                plain(old.get("payment_method_id"), names),
                plain(after.get("payment_method_id"), names)
            ));
        }
        if !parts.is_empty() {
            notes.push(with_reason(format!(
                "{} changed: {}",
                payment_word(after),
                parts.join(", ")
            )));
        }
    }
    if kind == RecordKind::Invoice && (changed("discount_percent") || changed("discount_cents")) {
        notes.push(discount(after).unwrap_or_else(|| "Discount removed".to_owned()));
    }
    notes
}

/// The status note of a communication: `Email "Your session" sent by Trigger "Reminder"`.
pub fn communication_sent(channel: &str, subject: &str, via: Option<&str>) -> String {
    let channel = {
        let mut c = channel.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    match via {
        Some(via) => format!("{channel} \"{subject}\" sent by {via}"),
        None => format!("{channel} \"{subject}\" sent"),
    }
}

/// One change as a person reads it, for the stamped reason line:
/// `Email: old@x.com → new@x.com`.
pub fn describe(kind: RecordKind, change: &Change, names: &Names) -> String {
    let label = field_title(&change.field);
    let Some(field) = kind.field(&change.field) else {
        return format!("{label}: {} → {}", change.old, change.new);
    };
    if field.ty == FieldType::Lines {
        return describe_lines(&change.old, &change.new);
    }
    let show = |v: &Value| match field.ty {
        FieldType::Cents => money(Some(v)),
        FieldType::Choice(_) => plain(Some(v), names),
        FieldType::Bool => if v == &Value::Bool(true) { "yes" } else { "no" }.to_owned(),
        _ => plain(Some(v), names),
    };
    format!("{label}: {} → {}", show(&change.old), show(&change.new))
}

fn describe_lines(old: &Value, new: &Value) -> String {
    let empty = Vec::new();
    let (a, b) = (
        old.as_array().unwrap_or(&empty),
        new.as_array().unwrap_or(&empty),
    );
    let mut parts: Vec<String> = a
        .iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x["item"] == y["item"] && x["unit_cents"] != y["unit_cents"])
        .map(|(i, (x, y))| {
            format!(
                "Line {} ({}) price: {} → {}",
                i + 1,
                y["item"].as_str().unwrap_or_default(),
                money(x.get("unit_cents")),
                money(y.get("unit_cents"))
            )
        })
        .collect();
    if parts.is_empty() || !prices_changed(old, new) {
        parts.push(format!("Lines: {} → {}", a.len(), b.len()));
    }
    parts.join("; ")
}

/// `client_status_id` → `Client status`, `amount_cents` → `Amount`.
pub fn field_title(field: &str) -> String {
    let base = field
        .strip_suffix("_id")
        .or_else(|| field.strip_suffix("_cents"))
        .unwrap_or(field)
        .replace('_', " ");
    let mut chars = base.chars();
    chars
        .next()
        .map(|f| f.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `$1,234.56`; refunds as `-$10.00`.
pub fn money(cents: Option<&Value>) -> String {
    let Some(cents) = cents.and_then(Value::as_i64) else {
        return "(none)".into();
    };
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let dollars = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in dollars.chars().enumerate() {
        if i > 0 && (dollars.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}${grouped}.{:02}", abs % 100)
}

fn abs(v: &Value) -> Value {
    v.as_i64().map_or(Value::Null, |n| Value::from(n.abs()))
}

fn payment_word(fields: &Fields) -> &'static str {
    match fields.get("amount_cents").and_then(Value::as_i64) {
        Some(n) if n < 0 => "Refund",
        _ => "Payment",
    }
}

fn discount(fields: &Fields) -> Option<String> {
    let reason = fields
        .get("discount_reason")
        .and_then(Value::as_str)
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    match (
        fields.get("discount_percent").and_then(Value::as_i64),
        fields.get("discount_cents").and_then(Value::as_i64),
    ) {
        (Some(p), _) if p != 0 => Some(format!("Discount of {p}% applied{reason}")),
        (_, Some(c)) if c != 0 => Some(format!(
            "Discount of {} applied{reason}",
            money(Some(&Value::from(c)))
        )),
        _ => None,
    }
}

fn plain(v: Option<&Value>, names: &Names) -> String {
    match v {
        None | Some(Value::Null) => "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v
            .as_i64()
            .and_then(|id| names.get(&id).cloned())
            .unwrap_or_else(|| v.to_string()),
    }
}

fn quoted(v: Option<&Value>, names: &Names) -> String {
    match v {
        None | Some(Value::Null) => "(none)".into(),
        v => format!("\"{}\"", plain(v, names)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(v: Value) -> Fields {
        v.as_object().unwrap().clone()
    }

    fn names() -> Names {
        [
            (1, "Session Pending"),
            (2, "Image Capture Pending"),
            (7, "Cash"),
            (8, "Check"),
        ]
        .into_iter()
        .map(|(i, n)| (i, n.to_owned()))
        .collect()
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    #[test]
    fn session_status_and_move() {
        let before = f(
            json!({"session_status_id": 1, "starts_at": "2018-10-20T18:00:00Z",
            "ends_at": "2018-10-20T19:00:00Z", "confirmed": true, "cancelled": false}),
        );
        let after = f(json!({"session_status_id": 2, "status_due": "2018-10-25",
            "starts_at": "2018-10-27T14:00:00Z", "ends_at": "2018-10-27T15:00:00Z",
            "confirmed": false, "cancelled": false}));
        let notes = derive(
            RecordKind::Session,
            Action::Update,
            Some(&before),
            &after,
            &names(),
            &ny(),
            None,
        );
        assert_eq!(
            notes,
            [
                "Status changed from \"Session Pending\" to \"Image Capture Pending\" (due 10/25/2018)",
                "Session moved from 10/20/2018 2:00 PM–3:00 PM to 10/27/2018 10:00 AM–11:00 AM",
                "Confirmation cleared by the reschedule",
            ]
        );
    }

    #[test]
    fn cancellation_with_reason() {
        let before = f(json!({"cancelled": false, "on_hold": false}));
        let after = f(json!({"cancelled": true, "on_hold": false}));
        let notes = derive(
            RecordKind::Session,
            Action::Update,
            Some(&before),
            &after,
            &names(),
            &ny(),
            Some("Client is ill"),
        );
        assert_eq!(notes, ["Session cancelled. Reason: Client is ill"]);
    }

    #[test]
    fn payments() {
        let p = f(json!({"amount_cents": 5000, "payment_method_id": 7}));
        assert_eq!(
            derive(
                RecordKind::Payment,
                Action::Create,
                None,
                &p,
                &names(),
                &ny(),
                None
            ),
            ["Payment of $50.00 by Cash recorded"]
        );
        let r = f(json!({"amount_cents": -1000, "payment_method_id": 7}));
        assert_eq!(
            derive(
                RecordKind::Payment,
                Action::Create,
                None,
                &r,
                &names(),
                &ny(),
                None
            ),
            ["Refund of $10.00 by Cash recorded"]
        );
        let changed = f(json!({"amount_cents": 4500, "payment_method_id": 8}));
        assert_eq!(
            derive(
                RecordKind::Payment,
                Action::Update,
                Some(&p),
                &changed,
                &names(),
                &ny(),
                Some("Typo")
            ),
            ["Payment changed: amount $50.00 → $45.00, method Cash → Check. Reason: Typo"]
        );
        assert_eq!(
            derive(
                RecordKind::Payment,
                Action::Void,
                Some(&p),
                &p,
                &names(),
                &ny(),
                None
            ),
            ["Payment of $50.00 voided"]
        );
    }

    #[test]
    fn discounts_and_posting() {
        let none = f(json!({"discount_percent": null, "discount_cents": null}));
        let ten = f(
            json!({"discount_percent": 10, "discount_cents": null, "discount_reason": "Loyalty"}),
        );
        assert_eq!(
            derive(
                RecordKind::Invoice,
                Action::Update,
                Some(&none),
                &ten,
                &names(),
                &ny(),
                None
            ),
            ["Discount of 10% applied (Loyalty)"]
        );
        assert_eq!(
            derive(
                RecordKind::Invoice,
                Action::Update,
                Some(&ten),
                &none,
                &names(),
                &ny(),
                None
            ),
            ["Discount removed"]
        );
        assert_eq!(
            derive(
                RecordKind::Invoice,
                Action::Post,
                Some(&none),
                &none,
                &names(),
                &ny(),
                None
            ),
            ["Invoice posted"]
        );
    }

    #[test]
    fn words() {
        assert_eq!(money(Some(&json!(123_456_789))), "$1,234,567.89");
        assert_eq!(money(Some(&json!(-5))), "-$0.05");
        assert_eq!(field_title("client_status_id"), "Client status");
        assert_eq!(field_title("amount_cents"), "Amount");
        assert_eq!(
            communication_sent(
                "email",
                "Your session is confirmed",
                Some("Trigger \"Reminder\"")
            ),
            "Email \"Your session is confirmed\" sent by Trigger \"Reminder\""
        );
        let c = Change {
            field: "email".into(),
            old: json!("old@x.com"),
            new: json!("new@x.com"),
        };
        assert_eq!(
            describe(RecordKind::Client, &c, &names()),
            "Email: old@x.com → new@x.com"
        );
        let c = Change {
            field: "lines".into(),
            old: json!([{"item": "8x10", "qty": 1, "unit_cents": 2500}]),
            new: json!([{"item": "8x10", "qty": 1, "unit_cents": 2000}]),
        };
        assert_eq!(
            describe(RecordKind::Invoice, &c, &names()),
            "Line 1 (8x10) price: $25.00 → $20.00"
        );
    }
}
