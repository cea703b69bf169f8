//! The server's planning: work it makes by itself rather than on a dispatcher's request.
//! [`pm`] decides preventive-maintenance occurrences without IO (time is an argument);
//! [`scheduler`] is the task that loads its inputs from the store and makes the jobs.

pub mod pm;
pub mod scheduler;
