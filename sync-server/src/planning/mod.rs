//! The server's planning: work it makes by itself rather than on a dispatcher's request, and
//! the plans it proposes. [`pm`] decides preventive-maintenance occurrences without IO (time is
//! an argument); [`scheduler`] is the task that loads its inputs from the store and makes the
//! jobs. [`suggest`] ranks technicians for a job and [`routes`] orders each technician's day,
//! both pure over inputs [`crate::store::planning`] loads; [`geo`] measures their distances.
//! [`sla`] computes SLA clocks without IO; [`sla_watch`] records breaches once and sends them
//! to the webhook.

pub mod geo;
pub mod pm;
pub mod routes;
pub mod scheduler;
pub mod service;
pub mod sla;
pub mod sla_watch;
pub mod suggest;
