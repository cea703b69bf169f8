//! The job workflow, from the seeds' work orders, repair orders and maintenance requests.
//!
//! ```text
//! pending ──> assigned ──> en_route ──> in_progress ──> completed
//!    ^           │  ^          │          │    ^
//!    └───────────┘  └──────────┘          v    │
//!                                        on_hold
//! any state but completed/cancelled ──> cancelled
//! ```
//! A technician can go straight from `assigned` to `in_progress` (already on site), and back from
//! `en_route` to `assigned` (turned around). `completed` and `cancelled` are terminal.

use serde::{Deserialize, Serialize};

#[derive(
    utoipa::ToSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Assigned,
    EnRoute,
    InProgress,
    OnHold,
    Completed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Pending,
        JobStatus::Assigned,
        JobStatus::EnRoute,
        JobStatus::InProgress,
        JobStatus::OnHold,
        JobStatus::Completed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Assigned => "assigned",
            JobStatus::EnRoute => "en_route",
            JobStatus::InProgress => "in_progress",
            JobStatus::OnHold => "on_hold",
            JobStatus::Completed => "completed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Cancelled)
    }

    /// Whether the workflow allows moving from `self` to `to`.
    pub fn can_transition_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        if self.is_terminal() || self == to {
            return false;
        }
        matches!(
            (self, to),
            (_, Cancelled)
                | (Pending, Assigned)
                | (Assigned, Pending | EnRoute | InProgress)
                | (EnRoute, Assigned | InProgress)
                | (InProgress, OnHold | Completed)
                | (OnHold, InProgress)
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(
    utoipa::ToSchema,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_go_nowhere() {
        for to in JobStatus::ALL {
            assert!(!JobStatus::Completed.can_transition_to(to));
            assert!(!JobStatus::Cancelled.can_transition_to(to));
        }
    }

    #[test]
    fn the_happy_path_is_allowed_and_skipping_work_is_not() {
        use JobStatus::*;
        for (a, b) in [
            (Pending, Assigned),
            (Assigned, EnRoute),
            (EnRoute, InProgress),
            (InProgress, Completed),
        ] {
            assert!(a.can_transition_to(b), "{a} -> {b}");
        }
        assert!(!Pending.can_transition_to(Completed));
        assert!(!Assigned.can_transition_to(Completed));
        assert!(!OnHold.can_transition_to(Completed));
    }

    #[test]
    fn names_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
        }
    }
}
