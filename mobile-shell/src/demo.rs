//! Sample jobs for a first look at an empty device.

use chrono::{Duration, Timelike, Utc};
use client_core::{JobFilter, Replica};
use schemas::job::NewJob;
use schemas::{JobStatus, Priority};

/// Fill an empty replica with `count` jobs: the samples, repeated a few hours apart.
pub fn fill(r: &mut Replica, count: usize) -> anyhow::Result<()> {
    if !r.list_jobs(JobFilter::All)?.is_empty() {
        return Ok(());
    }
    let today = Utc::now()
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .unwrap_or_else(Utc::now);
    let samples = [
        (
            "Rooftop unit seasonal service",
            "hvac_maintenance",
            "Northwind Offices",
            "12 Harbour St",
            1,
            Priority::Medium,
        ),
        (
            "Bumper and quarter panel QC",
            "collision_qc",
            "J. Alvarez",
            "Bay 3",
            3,
            Priority::High,
        ),
        (
            "Laptop intake diagnostics",
            "device_diagnostics",
            "Walk-in customer",
            "Front counter",
            26,
            Priority::Low,
        ),
        (
            "Room 412: AC not cooling",
            "hotel_maintenance",
            "Harbour View Hotel",
            "Room 412",
            0,
            Priority::Urgent,
        ),
    ];
    for n in 0..count {
        let (title, template, customer, site, hours, priority) = samples[n % samples.len()];
        let round = (n / samples.len()) as i64;
        let title = if round == 0 {
            title.to_string()
        } else {
            format!("{title} #{}", round + 1)
        };
        let new = NewJob::at_site(
            &title,
            customer,
            site,
            Some(today + Duration::hours(hours + 5 * round)),
            priority,
        );
        let job = r.create_job(new, Some(template))?;
        if priority == Priority::Urgent {
            r.set_status(job.id, JobStatus::EnRoute)?;
        }
    }
    Ok(())
}
