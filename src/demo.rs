//! A realistic studio for trying Keeptrack: staff, clients, sessions, appointments,
//! invoices and payments, all written through the ledger so every one is on record.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::{
    domain::{
        list::ListKind,
        record::{Fields, RecordKind},
    },
    ledger::{Command, Context, Error, Ledger},
    store::{self, lists::ListItem},
};

pub struct Plan {
    pub clients: usize,
    pub sessions: usize,
    pub seed: u64,
}

/// How many commands a plan submits, for a progress bar.
impl Plan {
    pub fn commands(&self) -> u64 {
        // users + clients + per session: session, appointment, invoice, payment.
        (STAFF.len() + self.clients + self.sessions * 4) as u64
    }
}

const STAFF: [(&str, &str, &str, &str); 4] = [
    ("mary", "Mary K Hill", "MKH", "manager"),
    ("tom", "Tom Reyes", "TR", "staff"),
    ("ana", "Ana Lopez", "AL", "staff"),
    ("joe", "Joe Park", "JP", "staff"),
];
const FIRST: [&str; 20] = [
    "Jane", "Olivia", "Liam", "Emma", "Noah", "Ava", "Mia", "Lucas", "Sofia", "Ethan", "Grace",
    "Henry", "Chloe", "Owen", "Zoe", "Caleb", "Nora", "Isaac", "Lily", "Elijah",
];
const LAST: [&str; 20] = [
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris",
    "Clark", "Lewis",
];
const CITIES: [&str; 6] = [
    "Akron",
    "Canton",
    "Kent",
    "Cuyahoga Falls",
    "Medina",
    "Hudson",
];
const PRODUCTS: [(&str, i64); 6] = [
    ("Session fee", 15000),
    ("8x10 print", 2500),
    ("5x7 print", 1500),
    ("Wallet set", 1200),
    ("Canvas 16x20", 18900),
    ("Digital collection", 29900),
];

/// xorshift64*: a small deterministic generator, so the same seed makes the same studio.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => Fields::new(),
    }
}

/// Fills an empty studio. `tick` is called once per command done.
pub async fn fill(
    ledger: &Ledger,
    plan: &Plan,
    now: Timestamp,
    tick: impl Fn() + Send + Sync + Clone + 'static,
) -> Result<(), Error> {
    let db = ledger.db();
    if store::records::count(db, RecordKind::Client).await? > 0 {
        return Err(Error::InUse(
            "the demo fills an empty studio; this one has clients".into(),
        ));
    }
    let mut rng = Rng(plan.seed.max(1));
    let items = store::lists::all(db).await?;
    let ids =
        |list: ListKind| -> Vec<&ListItem> { items.iter().filter(|i| i.list == list).collect() };

    let mut staff = Vec::new();
    // Back-dated invoices and discounts are overrides: managers make them.
    let mut managers = Vec::new();
    for (username, name, initials, group) in STAFF {
        let id = match store::records::find_id(db, RecordKind::User, "username", username).await? {
            Some(id) => id,
            None => {
                let f = fields(json!({"username": username, "display_name": name,
                    "initials": initials, "security_group": group}));
                let out = ledger
                    .create_user(Context::system(), f, &format!("{username}-demo-password"))
                    .await?;
                out.record.map_or(0, |r| r.id)
            }
        };
        staff.push(id);
        if group != "staff" {
            managers.push(id);
        }
        tick();
    }

    let statuses = ids(ListKind::ClientStatus);
    let mut jobs = Vec::new();
    for n in 0..plan.clients {
        let (first, last) = (*rng.pick(&FIRST), *rng.pick(&LAST));
        let f = fields(json!({
            "first_name": first, "last_name": last,
            "email": format!("{}.{}{n}@example.com", first.to_lowercase(), last.to_lowercase()),
            "phone": format!("330-555-{:04}", rng.below(10_000)),
            "city": rng.pick(&CITIES), "region": "OH",
            "client_status_id": rng.pick(&statuses).id,
            "do_not_market": rng.below(10) == 0,
        }));
        jobs.push((
            *rng.pick(&staff),
            Command::Create {
                kind: RecordKind::Client,
                fields: f,
            },
        ));
    }
    let clients = run_all(ledger, jobs, tick.clone()).await?;

    let (types, session_statuses) = (ids(ListKind::SessionType), ids(ListKind::SessionStatus));
    let mut jobs = Vec::new();
    let mut starts = Vec::new();
    for _ in 0..plan.sessions {
        let day = i64::try_from(rng.below(365)).unwrap_or(0) - 182;
        let hour = i64::try_from(9 + rng.below(8)).unwrap_or(9);
        let start = now.round(jiff::Unit::Hour).unwrap_or(now)
            + SignedDuration::from_hours(day * 24 + hour - 12);
        starts.push(start);
        let f = fields(json!({
            "client_id": rng.pick(&clients), "session_type_id": rng.pick(&types).id,
            "starts_at": start.to_string(), "photographer_id": rng.pick(&staff),
            "session_status_id": rng.pick(&session_statuses).id,
            "confirmed": rng.below(2) == 0,
        }));
        jobs.push((
            *rng.pick(&staff),
            Command::Create {
                kind: RecordKind::Session,
                fields: f,
            },
        ));
    }
    let sessions = run_all(ledger, jobs, tick.clone()).await?;
    let session_clients: Vec<i64> = {
        let mut out = Vec::new();
        for id in &sessions {
            let r = store::records::get(db, RecordKind::Session, *id).await?;
            out.push(r.and_then(|r| r.fields["client_id"].as_i64()).unwrap_or(0));
        }
        out
    };

    let (appt_types, appt_statuses) = (
        ids(ListKind::AppointmentType),
        ids(ListKind::AppointmentStatus),
    );
    let mut jobs = Vec::new();
    for ((session, client), start) in sessions.iter().zip(&session_clients).zip(&starts) {
        let f = fields(json!({
            "client_id": client, "session_id": session,
            "appointment_type_id": rng.pick(&appt_types).id,
            "starts_at": (*start + SignedDuration::from_hours(24 * 7)).to_string(),
            "appointment_status_id": rng.pick(&appt_statuses).id,
        }));
        jobs.push((
            *rng.pick(&staff),
            Command::Create {
                kind: RecordKind::Appointment,
                fields: f,
            },
        ));
    }
    run_all(ledger, jobs, tick.clone()).await?;

    let mut jobs = Vec::new();
    let mut amounts = Vec::new();
    for ((session, client), start) in sessions.iter().zip(&session_clients).zip(&starts) {
        let lines: Vec<Value> = (0..1 + rng.below(4))
            .map(|_| {
                let (item, price) = *rng.pick(&PRODUCTS);
                json!({"item": item, "qty": 1 + rng.below(3), "unit_cents": price})
            })
            .collect();
        let subtotal: i64 = lines
            .iter()
            .map(|l| l["qty"].as_i64().unwrap_or(0) * l["unit_cents"].as_i64().unwrap_or(0))
            .sum();
        let mut f = json!({
            "client_id": client, "session_id": session, "lines": lines,
            "invoice_date": start.to_zoned_datetime(jiff::tz::TimeZone::UTC).date().to_string(),
        });
        let mut total = subtotal;
        if rng.below(10) == 0 {
            f["discount_percent"] = json!(10);
            f["discount_reason"] = json!("Returning client");
            total -= (subtotal + 5) / 10;
        }
        amounts.push(total);
        jobs.push((
            *rng.pick(&managers),
            Command::Create {
                kind: RecordKind::Invoice,
                fields: fields(f),
            },
        ));
    }
    let invoices = run_all(ledger, jobs, tick.clone()).await?;

    let methods = ids(ListKind::PaymentMethod);
    let mut jobs = Vec::new();
    for ((invoice, amount), start) in invoices.iter().zip(&amounts).zip(&starts) {
        let f = fields(json!({
            "invoice_id": invoice, "amount_cents": (*amount).max(1),
            "payment_method_id": rng.pick(&methods).id,
            "paid_on": start.to_zoned_datetime(jiff::tz::TimeZone::UTC).date().to_string(),
        }));
        jobs.push((
            *rng.pick(&staff),
            Command::Create {
                kind: RecordKind::Payment,
                fields: f,
            },
        ));
    }
    run_all(ledger, jobs, tick).await?;
    Ok(())
}

/// Submits many commands at once so the writer can commit them in groups; returns the
/// ids of the records made, in order.
async fn run_all(
    ledger: &Ledger,
    jobs: Vec<(i64, Command)>,
    tick: impl Fn() + Send + Sync + Clone + 'static,
) -> Result<Vec<i64>, Error> {
    const IN_FLIGHT: usize = 64;
    let mut ids = vec![0; jobs.len()];
    let mut set = JoinSet::new();
    for (n, (actor, command)) in jobs.into_iter().enumerate() {
        if set.len() >= IN_FLIGHT {
            collect(&mut set, &mut ids).await?;
        }
        let (ledger, tick) = (ledger.clone(), tick.clone());
        set.spawn(async move {
            let out = ledger.submit(Context::user(actor), command).await;
            tick();
            (n, out)
        });
    }
    while !set.is_empty() {
        collect(&mut set, &mut ids).await?;
    }
    Ok(ids)
}

async fn collect(
    set: &mut JoinSet<(usize, Result<crate::ledger::Outcome, Error>)>,
    ids: &mut [i64],
) -> Result<(), Error> {
    if let Some(done) = set.join_next().await {
        let (n, out) = done.map_err(|_| Error::Unavailable)?;
        ids[n] = out?.record.map_or(0, |r| r.id);
    }
    Ok(())
}
