//! Which changes need a reason: the policy, and which of its rules a change triggers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{audit::Action, diff::Change, record::RecordKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonRule {
    ClientEmail,
    ClientPhone,
    ClientAddress,
    InvoicePrice,
    InvoiceDiscount,
    InvoiceDate,
    PaymentAmount,
    PaymentMethod,
    PaymentVoid,
    SessionCancel,
    SessionHold,
    Delete,
    Restore,
}

pub const MAX_REASON_CHARS: usize = 500;

impl ReasonRule {
    /// The default policy: every rule.
    pub const ALL: [Self; 13] = [
        Self::ClientEmail,
        Self::ClientPhone,
        Self::ClientAddress,
        Self::InvoicePrice,
        Self::InvoiceDiscount,
        Self::InvoiceDate,
        Self::PaymentAmount,
        Self::PaymentMethod,
        Self::PaymentVoid,
        Self::SessionCancel,
        Self::SessionHold,
        Self::Delete,
        Self::Restore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientEmail => "client_email",
            Self::ClientPhone => "client_phone",
            Self::ClientAddress => "client_address",
            Self::InvoicePrice => "invoice_price",
            Self::InvoiceDiscount => "invoice_discount",
            Self::InvoiceDate => "invoice_date",
            Self::PaymentAmount => "payment_amount",
            Self::PaymentMethod => "payment_method",
            Self::PaymentVoid => "payment_void",
            Self::SessionCancel => "session_cancel",
            Self::SessionHold => "session_hold",
            Self::Delete => "delete",
            Self::Restore => "restore",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The fields whose change the rule is about, for the stamped reason line.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Self::ClientEmail => &["email"],
            Self::ClientPhone => &["phone", "mobile"],
            Self::ClientAddress => &["street", "city", "region", "postal_code"],
            Self::InvoicePrice => &["lines"],
            Self::InvoiceDiscount => &["discount_percent", "discount_cents"],
            Self::InvoiceDate => &["invoice_date"],
            Self::PaymentAmount => &["amount_cents"],
            Self::PaymentMethod => &["payment_method_id"],
            Self::SessionCancel => &["cancelled"],
            Self::SessionHold => &["on_hold"],
            Self::PaymentVoid | Self::Delete | Self::Restore => &[],
        }
    }

    /// Parses the policy preference: rule names separated by commas.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        s.split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| Self::parse(r).ok_or_else(|| format!("{r:?} is not a reason rule")))
            .collect()
    }
}

/// The rules a change triggers, whatever the policy says.
pub fn triggered(kind: RecordKind, action: Action, changes: &[Change]) -> Vec<ReasonRule> {
    let changed = |names: &[&str]| changes.iter().any(|c| names.contains(&c.field.as_str()));
    let turned_on = |name: &str| {
        changes
            .iter()
            .any(|c| c.field == name && c.new == Value::Bool(true))
    };
    let mut rules = Vec::new();
    let mut need = |yes: bool, rule| {
        if yes {
            rules.push(rule);
        }
    };
    match action {
        Action::Delete => need(true, ReasonRule::Delete),
        Action::Restore => need(true, ReasonRule::Restore),
        Action::Void => need(true, ReasonRule::PaymentVoid),
        Action::Update => match kind {
            RecordKind::Client => {
                need(changed(&["email"]), ReasonRule::ClientEmail);
                need(changed(&["phone", "mobile"]), ReasonRule::ClientPhone);
                need(
                    changed(&["street", "city", "region", "postal_code"]),
                    ReasonRule::ClientAddress,
                );
            }
            RecordKind::Invoice => {
                need(
                    changes
                        .iter()
                        .any(|c| c.field == "lines" && prices_changed(&c.old, &c.new)),
                    ReasonRule::InvoicePrice,
                );
                need(
                    changed(&["discount_percent", "discount_cents"]),
                    ReasonRule::InvoiceDiscount,
                );
                need(changed(&["invoice_date"]), ReasonRule::InvoiceDate);
            }
            RecordKind::Payment => {
                need(changed(&["amount_cents"]), ReasonRule::PaymentAmount);
                need(changed(&["payment_method_id"]), ReasonRule::PaymentMethod);
            }
            RecordKind::Session => {
                need(turned_on("cancelled"), ReasonRule::SessionCancel);
                need(turned_on("on_hold"), ReasonRule::SessionHold);
            }
            _ => {}
        },
        _ => {}
    }
    rules
}

/// A price override: a line that is still there (same position and item) at another
/// unit price. Adding or removing lines is not an override.
pub fn prices_changed(old: &Value, new: &Value) -> bool {
    let (Some(old), Some(new)) = (old.as_array(), new.as_array()) else {
        return false;
    };
    old.iter()
        .zip(new)
        .any(|(a, b)| a["item"] == b["item"] && a["unit_cents"] != b["unit_cents"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(f: &str, old: Value, new: Value) -> Change {
        Change {
            field: f.into(),
            old,
            new,
        }
    }

    #[test]
    fn client_contact_changes() {
        let c = [
            change("email", json!("a@x.com"), json!("b@x.com")),
            change("city", json!(null), json!("Kent")),
        ];
        assert_eq!(
            triggered(RecordKind::Client, Action::Update, &c),
            [ReasonRule::ClientEmail, ReasonRule::ClientAddress]
        );
        let c = [change("first_name", json!("A"), json!("B"))];
        assert!(triggered(RecordKind::Client, Action::Update, &c).is_empty());
    }

    #[test]
    fn price_overrides_but_not_new_lines() {
        let old = json!([{"item": "Print", "qty": 1, "unit_cents": 2500}]);
        let cheaper = json!([{"item": "Print", "qty": 1, "unit_cents": 2000}]);
        let more = json!([{"item": "Print", "qty": 1, "unit_cents": 2500}, {"item": "Frame", "qty": 1, "unit_cents": 900}]);
        assert!(prices_changed(&old, &cheaper));
        assert!(!prices_changed(&old, &more));
    }

    #[test]
    fn cancelling_and_holding_but_not_undoing() {
        let c = [change("cancelled", json!(false), json!(true))];
        assert_eq!(
            triggered(RecordKind::Session, Action::Update, &c),
            [ReasonRule::SessionCancel]
        );
        let c = [change("on_hold", json!(true), json!(false))];
        assert!(triggered(RecordKind::Session, Action::Update, &c).is_empty());
        assert_eq!(
            triggered(RecordKind::Client, Action::Delete, &[]),
            [ReasonRule::Delete]
        );
    }

    #[test]
    fn policy_lists() {
        assert_eq!(
            ReasonRule::parse_list("delete, restore").unwrap(),
            [ReasonRule::Delete, ReasonRule::Restore]
        );
        assert_eq!(ReasonRule::parse_list("").unwrap(), []);
        assert!(ReasonRule::parse_list("delete,nope").is_err());
    }
}
