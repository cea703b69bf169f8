//! Sample jobs for a first look at an empty device.

use chrono::{Duration, Timelike, Utc};
use client_core::{JobFilter, Replica};
use schemas::job::NewJob;
use schemas::{JobStatus, Priority};

pub fn fill(r: &mut Replica) -> anyhow::Result<()> {
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
    for (title, template, customer, site, hours, priority) in samples {
        let new = NewJob::at_site(
            title,
            customer,
            site,
            Some(today + Duration::hours(hours)),
            priority,
        );
        let job = r.create_job(new, Some(template))?;
        if priority == Priority::Urgent {
            r.set_status(job.id, JobStatus::EnRoute)?;
        }
    }
    Ok(())
}
