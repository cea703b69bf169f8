//! The server's planning: work it makes by itself rather than on a dispatcher's request.
//! [`pm`] decides preventive-maintenance occurrences without IO (time is an argument);
//! [`scheduler`] is the task that loads its inputs from the store and makes the jobs.
//! [`sla`] computes SLA clocks without IO; [`sla_watch`] records breaches once and sends them to
//! the webhook.

pub mod pm;
pub mod scheduler;
pub mod sla;
pub mod sla_watch;
