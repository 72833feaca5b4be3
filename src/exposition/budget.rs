//! Connection budgets: each port has a cap of its own, and one client address
//! may hold at most half of it, so a flood of connections on one port, or from
//! one client, leaves room for everyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The connections open on one port.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    per_client: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The port's budget is spent.
    PortLimit,
    /// This client address holds its share already.
    ClientLimit,
}

impl Refusal {
    /// The `reason` label value.
    pub fn reason(self) -> &'static str {
        match self {
            Self::PortLimit => "port_limit",
            Self::ClientLimit => "client_limit",
        }
    }
}

/// A connection's place in its port's budget, given back when dropped.
#[derive(Debug)]
pub struct Admission {
    budget: Arc<Budget>,
    client: IpAddr,
}

impl Budget {
    /// A budget of `limit` connections, at most half of them (at least one)
    /// from one client address.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            per_client: (limit / 2).max(1),
            open: Mutex::default(),
        })
    }

    /// Take a place for a connection from `client`, or say why not.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Admission, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.limit {
            return Err(Refusal::PortLimit);
        }
        let mine = open.by_client.entry(client).or_insert(0);
        if *mine >= self.per_client {
            return Err(Refusal::ClientLimit);
        }
        *mine += 1;
        open.total += 1;
        Ok(Admission {
            budget: Arc::clone(self),
            client,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self
            .budget
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_half_and_the_port_its_limit() {
        let budget = Budget::new(4);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            [10, 0, 0, 3].into(),
        );
        let a1 = budget.admit(a).unwrap();
        let _a2 = budget.admit(a).unwrap();
        assert_eq!(budget.admit(a).unwrap_err(), Refusal::ClientLimit);
        let _b1 = budget.admit(b).unwrap();
        let _b2 = budget.admit(b).unwrap();
        assert_eq!(budget.admit(c).unwrap_err(), Refusal::PortLimit);
        // A place given back is a place for anyone.
        drop(a1);
        assert!(budget.admit(c).is_ok());
    }

    #[test]
    fn a_budget_of_one_admits_one() {
        let budget = Budget::new(1);
        let a: IpAddr = [10, 0, 0, 1].into();
        let first = budget.admit(a).unwrap();
        assert_eq!(budget.admit(a).unwrap_err(), Refusal::PortLimit);
        drop(first);
        assert!(budget.admit(a).is_ok());
    }
}
