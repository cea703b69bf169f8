//! `GET /api/v1/kpis`: the org's field-service KPIs over a range of days, computed by the store
//! from the relational rows ([`crate::store::records::Records::kpis`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use schemas::api::{Kpis, SlaState};

use super::auth::Caller;
use super::records::{Params, bad_param};
use crate::error::ApiError;
use crate::planning::sla;
use crate::planning::sla_watch;
use crate::state::AppState;
use crate::store::sla::{SlaJob, SlaJobs};

/// The longest range one request may cover, in days (both ends included).
pub const MAX_DAYS: i64 = 366;

fn parse_date(v: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
}

/// The checked range `from..=to`: each a `YYYY-MM-DD` date, `to` not before `from`, at most
/// [`MAX_DAYS`] days.
pub fn range(from: Option<&str>, to: Option<&str>) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let from = from
        .ok_or_else(|| bad_param("from", "required: a date YYYY-MM-DD"))
        .and_then(|v| parse_date(v).ok_or_else(|| bad_param("from", "not a date YYYY-MM-DD")))?;
    let to = to
        .ok_or_else(|| bad_param("to", "required: a date YYYY-MM-DD"))
        .and_then(|v| parse_date(v).ok_or_else(|| bad_param("to", "not a date YYYY-MM-DD")))?;
    if to < from {
        return Err(bad_param("to", "is before from"));
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        return Err(bad_param(
            "to",
            &format!("the range from from to to is longer than {MAX_DAYS} days"),
        ));
    }
    Ok((from, to))
}

/// The KPIs of the jobs completed on the days `from` to `to` (UTC, both included).
#[utoipa::path(get, path = "/api/v1/kpis", tag = "kpis", params(("from" = String, Query, description = "the first day, YYYY-MM-DD (UTC)"), ("to" = String, Query, description = "the last day, YYYY-MM-DD (UTC, included); at most 366 days in all")), responses((status = 200, body = schemas::api::Kpis), (status = 400, description = "bad-query: names the parameter", body = schemas::api::ErrorBody), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn kpis(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Kpis>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&["from", "to"])?;
    let (from, to) = range(params.get("from"), params.get("to"))?;
    let mut kpis = app.store.records().kpis(me.org_id, from, to).await?;
    let policies = sla_watch::Policies::new(&app.store.sla().sla_policies(Some(me.org_id)).await?);
    if !policies.is_empty() {
        let jobs = app
            .store
            .sla()
            .sla_jobs(SlaJobs::Completed(me.org_id, from, to))
            .await?;
        (kpis.sla_compliance, kpis.sla_note) = sla_compliance(&policies, &jobs, Utc::now());
    }
    Ok(Json(kpis))
}

/// The SLA compliance of completed jobs: of those an SLA policy applies to, the share whose
/// acknowledge and resolve clocks were both met; with a note saying over how many jobs (or why
/// there is no figure).
pub fn sla_compliance(
    policies: &sla_watch::Policies,
    jobs: &[SlaJob],
    now: DateTime<Utc>,
) -> (Option<f64>, Option<String>) {
    let mut counted = 0usize;
    let mut met = 0usize;
    for j in jobs {
        let Some(p) = policies.of(j) else {
            continue;
        };
        let (ack, resolve) = sla::clocks(p, &sla_watch::timeline(j), now, 1.0);
        if resolve.stopped_at.is_none() {
            continue;
        }
        counted += 1;
        if ack.state == SlaState::Met && resolve.state == SlaState::Met {
            met += 1;
        }
    }
    if counted == 0 {
        return (
            None,
            Some("no job completed in the range has an SLA policy".into()),
        );
    }
    (
        Some(met as f64 / counted as f64),
        Some(format!(
            "{met} of {counted} completed jobs with an SLA policy met both clocks"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(from: Option<&str>, to: Option<&str>) -> String {
        match range(from, to) {
            Err(ApiError::Rejected(_, _, message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ranges() {
        assert!(range(Some("2026-01-01"), Some("2026-01-01")).is_ok());
        assert!(range(Some("2024-01-01"), Some("2024-12-31")).is_ok());
        assert!(refused(None, Some("2026-01-01")).starts_with("from:"));
        assert!(refused(Some("2026-13-01"), Some("2026-01-01")).starts_with("from:"));
        assert!(refused(Some("2026-01-01"), None).starts_with("to:"));
        assert!(refused(Some("2026-01-02"), Some("2026-01-01")).starts_with("to:"));
        assert!(refused(Some("2025-01-01"), Some("2026-01-02")).starts_with("to:"));
    }
}
