//! The order of pool listings. OpenNebula prints every pool newest first unless oned.conf's
//! API_LIST_ORDER says otherwise (`OpenNebulaTemplate` defaults it to DESC), and a user or its
//! group may choose for itself in an `OPENNEBULA = [ API_LIST_ORDER = ASC ]` vector of its
//! template: the user's first, then the group's, then oned.conf
//! (`Nebula::get_configuration_attribute`). Anything but DESC, in any case, lists ascending.

use super::{Ctx, Failure};
use crate::auth::Session;

const NAME: &str = "API_LIST_ORDER";

/// Ascending or descending by id, as the statement's `ORDER BY` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    fn of(value: &str) -> Order {
        if value.trim().eq_ignore_ascii_case("DESC") {
            Order::Desc
        } else {
            Order::Asc
        }
    }

    /// What follows `ORDER BY <oid column>`.
    pub fn sql(self) -> &'static str {
        match self {
            Order::Asc => "",
            Order::Desc => " DESC",
        }
    }

    /// Puts rows read ascending into this order.
    pub fn arrange<T>(self, rows: &mut [T]) {
        if self == Order::Desc {
            rows.reverse();
        }
    }
}

/// The order the session's pool listings take.
pub async fn for_session(ctx: &Ctx, s: &Session) -> Result<Order, Failure> {
    let chosen = super::user_conf::get(ctx, s, NAME).await?;
    Ok(Order::of(chosen.as_deref().unwrap_or("DESC")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_desc_in_any_case_lists_newest_first() {
        assert_eq!(Order::of("desc"), Order::Desc);
        assert_eq!(Order::of(" DESC "), Order::Desc);
        assert_eq!(Order::of("ASC"), Order::Asc);
        assert_eq!(Order::of("newest"), Order::Asc);
    }
}
