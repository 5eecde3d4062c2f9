//! Pure business rules: records, their fields and validation, diffs, the audit entry,
//! configurable lists, permissions and digests. No IO, no SQL, no HTTP.

pub mod appointment;
pub mod audit;
pub mod client;
pub mod diff;
pub mod digest;
pub mod field;
pub mod invoice;
pub mod list;
pub mod lockout;
pub mod merkle;
pub mod note;
pub mod payment;
pub mod permission;
pub mod preference;
pub mod reason;
pub mod record;
pub mod security_group;
pub mod session;
pub mod stamp;
pub mod status_note;
pub mod user;
