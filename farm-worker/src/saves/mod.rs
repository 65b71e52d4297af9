//! Players' saves: the file format ([`format`], pure) and the store they live in ([`store`]:
//! a local directory or an S3-compatible bucket).

pub mod format;
pub mod store;

pub use format::{FormatError, SaveFile, SaveHeader};
pub use store::{Found, SaveKey, SaveStore, StoreError, SLOTS};
