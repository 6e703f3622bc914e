//! Flows: the symmetric key that names a TCP connection, and the per-worker table that holds
//! its [`crate::session::Session`].

mod key;
pub mod table;

pub use key::{Endpoint, FlowKey};
pub use table::{FlowPacket, FlowTable, FlowTableConfig};
