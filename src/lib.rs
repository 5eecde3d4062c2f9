//! Keeptrack: a back office for photography studios in which every change is accounted
//! for.
//!
//! The layers, each depending only on those below it:
//!
//! - [`domain`]: pure rules — records and their fields, diffs, the audit entry, lists,
//!   permissions. No IO.
//! - [`store`]: the only code that speaks SQL, to SQLite or PostgreSQL. Reads are open to
//!   all; its write functions need a [`store::WriteTx`], which only the ledger can open.
//! - [`ledger`]: the one write path. Every change is a [`ledger::Command`] that runs in one
//!   transaction with its audit entry, through a single writer task (group commit).
//! - [`audit`]: queries over the log.
//! - [`web`] and [`cli`]: the HTTP server and the `keeptrack` command.

pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod ledger;
pub mod store;
pub mod web;
