//! Payments and refunds (a refund is a negative amount), applied to an invoice.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::{
    field::{Field, FieldError, FieldType},
    invoice::MAX_CENTS,
    list::ListKind,
    record::{Record, RecordKind},
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub invoice_id: i64,
    pub amount_cents: i64,
    pub payment_method_id: i64,
    pub check_number: Option<String>,
    pub paid_on: Date,
    pub posted: bool,
    pub voided: bool,
}

impl Record for Payment {
    const FIELDS: &'static [Field] = &[
        Field::new("invoice_id", FieldType::Ref(RecordKind::Invoice))
            .required()
            .create_only(),
        Field::new("amount_cents", FieldType::Cents).required(),
        Field::new(
            "payment_method_id",
            FieldType::Choice(ListKind::PaymentMethod),
        )
        .required(),
        Field::new("check_number", FieldType::Text { max: 30 }),
        Field::new("paid_on", FieldType::Date).required(),
        Field::new("posted", FieldType::Bool).system(),
        Field::new("voided", FieldType::Bool).system(),
    ];

    fn validate(&mut self, errors: &mut Vec<FieldError>) {
        if self.amount_cents == 0 {
            errors.push(FieldError::new(
                "amount_cents",
                "must not be zero (a refund is negative)",
            ));
        } else if self.amount_cents.abs() > MAX_CENTS {
            errors.push(FieldError::new("amount_cents", "is out of range"));
        }
    }
}
