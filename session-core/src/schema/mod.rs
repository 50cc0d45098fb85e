//! Typed session schemas: the [`SessionSchema`] trait that `#[session]` implements, and the
//! [`SessionAccess`] trait for "a session you can read and write by key".

mod access;
mod definition;
mod error;
mod map;

pub use access::SessionAccess;
pub use definition::SessionSchema;
pub use error::SchemaError;
pub use map::SessionMap;
