//! Scenario tests through the public interfaces, each on SQLite and on PostgreSQL.
//! PostgreSQL runs when KEEPTRACK_TEST_DATABASE_URL names a server (a database is made
//! per test); with KEEPTRACK_REQUIRE_POSTGRES=1 a missing server fails instead of skipping.

mod helpers;

mod access;
mod archive;
mod audit_keys;
mod audit_queries;
mod checkpoints;
mod cli;
mod clock;
mod concurrency;
mod crash;
mod history;
mod http;
mod incremental;
mod ledger_records;
mod ledger_rules;
mod notes;
mod pg_role;
mod reasons;
mod reconnect;
mod replay;
mod split_view;
mod status_notes;
mod tamper;
mod upgrade;
