//! Invoices: numbered bills with lines and an invoice-level discount; totals are always
//! computed from the lines, never stored.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::{
    field::{Field, FieldError, FieldType},
    list::ListKind,
    record::{Record, RecordKind},
};

/// The largest amount any single money figure may reach: $100,000,000.00.
pub const MAX_CENTS: i64 = 10_000_000_000;
pub const MAX_LINES: usize = 500;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    pub number: i64,
    pub client_id: i64,
    pub bill_to_client_id: Option<i64>,
    pub session_id: Option<i64>,
    pub invoice_date: Date,
    pub description: Option<String>,
    pub lines: Vec<Line>,
    pub discount_percent: Option<i64>,
    pub discount_cents: Option<i64>,
    pub discount_reason: Option<String>,
    pub invoice_status_id: Option<i64>,
    pub posted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub item: String,
    pub qty: i64,
    pub unit_cents: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub subtotal_cents: i64,
    pub discount_cents: i64,
    pub total_cents: i64,
}

/// The fields whose change is an "Invoice Discount Applied" event.
pub const DISCOUNT_FIELDS: [&str; 3] = ["discount_percent", "discount_cents", "discount_reason"];

impl Record for Invoice {
    const FIELDS: &'static [Field] = &[
        Field::new("number", FieldType::Int)
            .required()
            .system()
            .unique(),
        Field::new("client_id", FieldType::Ref(RecordKind::Client)).required(),
        Field::new("bill_to_client_id", FieldType::Ref(RecordKind::Client)),
        Field::new("session_id", FieldType::Ref(RecordKind::Session)),
        Field::new("invoice_date", FieldType::Date).required(),
        Field::new("description", FieldType::Text { max: 200 }),
        Field::new("lines", FieldType::Lines).required(),
        Field::new("discount_percent", FieldType::Int),
        Field::new("discount_cents", FieldType::Cents),
        Field::new("discount_reason", FieldType::Text { max: 500 }),
        Field::new(
            "invoice_status_id",
            FieldType::Choice(ListKind::InvoiceStatus),
        ),
        Field::new("posted", FieldType::Bool).system(),
    ];

    fn validate(&mut self, errors: &mut Vec<FieldError>) {
        if self.lines.len() > MAX_LINES {
            errors.push(FieldError::new(
                "lines",
                format!("must have at most {MAX_LINES} lines"),
            ));
        }
        for (i, line) in self.lines.iter_mut().enumerate() {
            line.item = line.item.trim().to_owned();
            if line.item.is_empty() || line.item.chars().count() > 200 {
                errors.push(FieldError::new(
                    format!("lines[{i}].item"),
                    "must be 1 to 200 characters",
                ));
            }
            if !(1..=100_000).contains(&line.qty) {
                errors.push(FieldError::new(
                    format!("lines[{i}].qty"),
                    "must be between 1 and 100000",
                ));
            }
            if line.unit_cents.abs() > MAX_CENTS {
                errors.push(FieldError::new(
                    format!("lines[{i}].unit_cents"),
                    "is out of range",
                ));
            }
        }
        match (self.discount_percent, self.discount_cents) {
            (Some(_), Some(_)) => errors.push(FieldError::new(
                "discount_cents",
                "cannot be given together with discount_percent",
            )),
            (Some(p), None) if !(0..=100).contains(&p) => errors.push(FieldError::new(
                "discount_percent",
                "must be between 0 and 100",
            )),
            (None, Some(c)) if !(0..=MAX_CENTS).contains(&c) => errors.push(FieldError::new(
                "discount_cents",
                "must be between 0 and 10000000000",
            )),
            _ => {}
        }
        if self.has_discount() && self.discount_reason.is_none() {
            errors.push(FieldError::new(
                "discount_reason",
                "is required when a discount is given",
            ));
        }
        if !errors.is_empty() {
            return;
        }
        match self.totals() {
            Some(t) if t.total_cents < 0 && self.has_discount() => errors.push(FieldError::new(
                "discount_cents",
                "is larger than the invoice subtotal",
            )),
            Some(t) if t.subtotal_cents.abs() > MAX_CENTS => {
                errors.push(FieldError::new("lines", "total is out of range"));
            }
            Some(_) => {}
            None => errors.push(FieldError::new("lines", "total is out of range")),
        }
    }
}

/// The totals of a stored invoice's fields; `None` if they are not an invoice.
pub fn totals_of(fields: &super::record::Fields) -> Option<Totals> {
    serde_json::from_value::<Invoice>(serde_json::Value::Object(fields.clone()))
        .ok()?
        .totals()
}

impl Invoice {
    pub fn has_discount(&self) -> bool {
        self.discount_percent.unwrap_or(0) != 0 || self.discount_cents.unwrap_or(0) != 0
    }

    /// Subtotal, discount and total in cents; `None` only if they overflow. A percentage
    /// discount rounds half away from zero to the cent.
    pub fn totals(&self) -> Option<Totals> {
        let subtotal = self.lines.iter().try_fold(0_i64, |sum, l| {
            l.qty
                .checked_mul(l.unit_cents)
                .and_then(|x| sum.checked_add(x))
        })?;
        let discount = match (self.discount_percent, self.discount_cents) {
            (Some(p), _) => {
                let scaled = i128::from(subtotal) * i128::from(p);
                let rounded = (scaled + 50 * scaled.signum()) / 100;
                i64::try_from(rounded).ok()?
            }
            (None, Some(c)) => c,
            (None, None) => 0,
        };
        Some(Totals {
            subtotal_cents: subtotal,
            discount_cents: discount,
            total_cents: subtotal.checked_sub(discount)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invoice(
        lines: serde_json::Value,
        extra: serde_json::Value,
    ) -> Result<Invoice, Vec<FieldError>> {
        let mut v = json!({"number": 10001, "client_id": 1, "invoice_date": "2026-11-28",
                           "lines": lines});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        RecordKind::Invoice
            .normalize(v.as_object().unwrap())
            .map(|m| serde_json::from_value(serde_json::Value::Object(m)).unwrap())
    }

    #[test]
    fn totals_from_lines_and_discounts() {
        let lines = json!([{"item": "8x10", "qty": 2, "unit_cents": 2500},
                           {"item": "Session fee", "qty": 1, "unit_cents": 15000}]);
        let plain = invoice(lines.clone(), json!({})).unwrap();
        assert_eq!(plain.totals().unwrap().total_cents, 20000);
        let pct = invoice(
            lines.clone(),
            json!({"discount_percent": 15, "discount_reason": "Loyalty"}),
        )
        .unwrap();
        assert_eq!(
            pct.totals().unwrap(),
            Totals {
                subtotal_cents: 20000,
                discount_cents: 3000,
                total_cents: 17000
            }
        );
        let amt = invoice(
            lines,
            json!({"discount_cents": 999, "discount_reason": "Coupon"}),
        )
        .unwrap();
        assert_eq!(amt.totals().unwrap().total_cents, 19001);
    }

    #[test]
    fn percent_discount_rounds_half_away_from_zero() {
        let lines = json!([{"item": "Print", "qty": 1, "unit_cents": 1005}]);
        let inv = invoice(
            lines,
            json!({"discount_percent": 10, "discount_reason": "x"}),
        )
        .unwrap();
        assert_eq!(inv.totals().unwrap().discount_cents, 101);
    }

    #[test]
    fn bad_lines_name_their_field() {
        let err = invoice(
            json!([{"item": "", "qty": -1, "unit_cents": 1}, {"item": "ok", "qty": 1, "unit_cents": MAX_CENTS + 1}]),
            json!({}),
        )
        .unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["lines[0].item", "lines[0].qty", "lines[1].unit_cents"]
        );
        let err = invoice(json!([{"item": "x", "qty": 1}]), json!({})).unwrap_err();
        assert_eq!(err[0].field, "lines");
    }

    #[test]
    fn a_discount_needs_a_reason_and_must_fit() {
        let lines = json!([{"item": "Print", "qty": 1, "unit_cents": 1000}]);
        let err = invoice(lines.clone(), json!({"discount_percent": 10})).unwrap_err();
        assert_eq!(err[0].field, "discount_reason");
        let err = invoice(
            lines.clone(),
            json!({"discount_cents": 2000, "discount_reason": "x"}),
        )
        .unwrap_err();
        assert_eq!(err[0].field, "discount_cents");
        let err = invoice(
            lines,
            json!({"discount_cents": 1, "discount_percent": 1, "discount_reason": "x"}),
        )
        .unwrap_err();
        assert_eq!(err[0].field, "discount_cents");
    }

    #[test]
    fn totals_that_overflow_are_refused() {
        let many: Vec<_> = (0..500)
            .map(|_| json!({"item": "Big", "qty": 100000, "unit_cents": MAX_CENTS}))
            .collect();
        let err = invoice(json!(many), json!({})).unwrap_err();
        assert_eq!(err[0].field, "lines");
    }
}
