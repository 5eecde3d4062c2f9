//! Field-level changes (old → new) between two versions of a record, and replaying them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::{Fields, RecordKind};

/// What a secret field's values are shown as in the log.
pub const HIDDEN: &str = "(hidden)";

/// Fields in the order of their keys, as an entry's canonical bytes have them (see
/// `Entry::to_canonical_bytes`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    #[serde(rename = "f")]
    pub field: String,
    pub new: Value,
    pub old: Value,
}

/// The changes from `before` to `after`, in field-table order; empty when nothing changed.
pub fn diff(kind: RecordKind, before: &Fields, after: &Fields) -> Vec<Change> {
    kind.fields()
        .iter()
        .filter_map(|f| {
            let old = before.get(f.name).unwrap_or(&Value::Null);
            let new = after.get(f.name).unwrap_or(&Value::Null);
            (old != new).then(|| change(f.name, f.secret, old, new))
        })
        .collect()
}

/// A new record as changes from nothing: every field, so the entry is a full snapshot.
pub fn created(kind: RecordKind, after: &Fields) -> Vec<Change> {
    kind.fields()
        .iter()
        .map(|f| {
            let new = after.get(f.name).unwrap_or(&Value::Null);
            change(f.name, f.secret, &Value::Null, new)
        })
        .collect()
}

fn change(field: &str, secret: bool, old: &Value, new: &Value) -> Change {
    let hide = |v: &Value| {
        if secret && !v.is_null() {
            Value::from(HIDDEN)
        } else {
            v.clone()
        }
    };
    Change {
        field: field.to_owned(),
        old: hide(old),
        new: hide(new),
    }
}

/// Applies logged changes to a record's state, as a reader of the log would rebuild it.
pub fn apply(state: &mut Fields, changes: &[Change]) {
    for c in changes {
        state.insert(c.field.clone(), c.new.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn only_changed_fields_in_table_order() {
        let before = fields(json!({"last_name": "Smith", "email": "a@x.com", "city": "Akron"}));
        let after = fields(json!({"last_name": "Smith", "email": "b@x.com", "city": null}));
        let d = diff(RecordKind::Client, &before, &after);
        assert_eq!(
            d,
            vec![
                Change {
                    field: "email".into(),
                    old: json!("a@x.com"),
                    new: json!("b@x.com")
                },
                Change {
                    field: "city".into(),
                    old: json!("Akron"),
                    new: Value::Null
                },
            ]
        );
    }

    #[test]
    fn no_op_is_empty() {
        let v = fields(json!({"last_name": "Smith", "do_not_market": false}));
        assert!(diff(RecordKind::Client, &v, &v.clone()).is_empty());
    }

    #[test]
    fn secrets_are_hidden() {
        let before = fields(json!({"password_hash": "a"}));
        let after = fields(json!({"password_hash": "b"}));
        let d = diff(RecordKind::User, &before, &after);
        assert_eq!(d[0].old, json!(HIDDEN));
        assert_eq!(d[0].new, json!(HIDDEN));
    }

    proptest! {
        /// Replaying the diff of any two versions turns the first into the second.
        #[test]
        fn replay_reaches_after(
            a in proptest::collection::vec(proptest::option::of("[a-z]{0,3}"), 12),
            b in proptest::collection::vec(proptest::option::of("[a-z]{0,3}"), 12),
        ) {
            let names: Vec<_> = RecordKind::Client.fields().iter().map(|f| f.name).collect();
            let mk = |vals: &[Option<String>]| -> Fields {
                names.iter().zip(vals).map(|(n, v)| ((*n).to_owned(), v.clone().map_or(Value::Null, Value::from))).collect()
            };
            let (before, after) = (mk(&a), mk(&b));
            let mut state = before.clone();
            apply(&mut state, &diff(RecordKind::Client, &before, &after));
            prop_assert_eq!(state, after);
        }
    }
}
