-- Keeptrack schema, SQLite. Same tables and names as migrations/postgres.

CREATE TABLE list_items (
    id INTEGER PRIMARY KEY,
    list TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    active BOOLEAN NOT NULL,
    minutes BIGINT,
    days BIGINT,
    UNIQUE (list, name)
);

CREATE TABLE preferences (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The last number handed out per numbered kind (clients, sessions, invoices).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    last_number BIGINT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    initials TEXT NOT NULL UNIQUE,
    email TEXT,
    security_group TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    password_hash TEXT NOT NULL
);

CREATE TABLE clients (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    number BIGINT NOT NULL UNIQUE,
    first_name TEXT,
    last_name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    mobile TEXT,
    street TEXT,
    city TEXT,
    region TEXT,
    postal_code TEXT,
    client_status_id BIGINT REFERENCES list_items (id),
    do_not_market BOOLEAN NOT NULL
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    number BIGINT NOT NULL UNIQUE,
    client_id BIGINT NOT NULL REFERENCES clients (id),
    session_type_id BIGINT NOT NULL REFERENCES list_items (id),
    description TEXT,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    photographer_id BIGINT REFERENCES users (id),
    session_status_id BIGINT NOT NULL REFERENCES list_items (id),
    status_due TEXT,
    confirmed BOOLEAN NOT NULL,
    cancelled BOOLEAN NOT NULL,
    on_hold BOOLEAN NOT NULL,
    rescheduled BOOLEAN NOT NULL
);

CREATE TABLE appointments (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    client_id BIGINT REFERENCES clients (id),
    session_id BIGINT REFERENCES sessions (id),
    appointment_type_id BIGINT NOT NULL REFERENCES list_items (id),
    description TEXT,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    appointment_status_id BIGINT REFERENCES list_items (id)
);

CREATE TABLE invoices (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    number BIGINT NOT NULL UNIQUE,
    client_id BIGINT NOT NULL REFERENCES clients (id),
    bill_to_client_id BIGINT REFERENCES clients (id),
    session_id BIGINT REFERENCES sessions (id),
    invoice_date TEXT NOT NULL,
    description TEXT,
    lines TEXT NOT NULL,
    discount_percent BIGINT,
    discount_cents BIGINT,
    discount_reason TEXT,
    invoice_status_id BIGINT REFERENCES list_items (id),
    posted BOOLEAN NOT NULL
);

CREATE TABLE payments (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    invoice_id BIGINT NOT NULL REFERENCES invoices (id),
    amount_cents BIGINT NOT NULL,
    payment_method_id BIGINT NOT NULL REFERENCES list_items (id),
    check_number TEXT,
    paid_on TEXT NOT NULL,
    posted BOOLEAN NOT NULL,
    voided BOOLEAN NOT NULL
);

-- Entries are the canonical JSON bytes; the other columns are indexed copies that
-- `audit verify` compares with the bytes.
CREATE TABLE audit_log (
    idx BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    category TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id BIGINT,
    record_type TEXT,
    record_id BIGINT,
    entry BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);

CREATE TABLE log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    root BLOB
);
INSERT INTO log_head (id, size) VALUES (1, 0);

CREATE INDEX clients_name ON clients (last_name, first_name);
CREATE INDEX sessions_client ON sessions (client_id);
CREATE INDEX sessions_starts ON sessions (starts_at);
CREATE INDEX appointments_client ON appointments (client_id);
CREATE INDEX appointments_starts ON appointments (starts_at);
CREATE INDEX invoices_client ON invoices (client_id);
CREATE INDEX invoices_bill_to ON invoices (bill_to_client_id);
CREATE INDEX payments_invoice ON payments (invoice_id);

-- Newest first within each filter; the (ts, idx) tail serves keyset pagination.
CREATE INDEX audit_log_ts ON audit_log (ts, idx);
CREATE INDEX audit_log_actor ON audit_log (actor_id, ts, idx);
CREATE INDEX audit_log_category ON audit_log (category, ts, idx);
CREATE INDEX audit_log_action ON audit_log (action, ts, idx);
CREATE INDEX audit_log_record ON audit_log (record_type, record_id, ts, idx);

-- Guard rails: the log is append-only and its head only grows. (They stop accidents and
-- SQL injection; the hashes and signatures are the guarantee.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER log_head_no_delete BEFORE DELETE ON log_head
BEGIN SELECT RAISE(ABORT, 'log_head cannot be deleted'); END;
CREATE TRIGGER log_head_only_grows BEFORE UPDATE ON log_head
WHEN NEW.size < OLD.size OR NEW.id <> OLD.id
BEGIN SELECT RAISE(ABORT, 'log_head only grows'); END;
