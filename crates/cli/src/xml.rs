//! OpenNebula's small XML documents as element trees: [`wire::xml`], shared with the server.

pub use wire::xml::*;
