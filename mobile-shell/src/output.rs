//! Presentation: JSON for scripts, short text for people.

use client_core::{JobSummary, JobView, Repair};

pub struct Out {
    pub json: bool,
}

impl Out {
    pub fn value(&self, json: serde_json::Value, text: &str) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&json)?);
        } else {
            println!("{text}");
        }
        Ok(())
    }

    pub fn done(&self, text: &str) -> anyhow::Result<()> {
        self.value(serde_json::json!({"ok": true}), text)
    }

    pub fn jobs(&self, jobs: &[JobSummary]) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(jobs)?);
            return Ok(());
        }
        if jobs.is_empty() {
            println!("no jobs");
        }
        for j in jobs {
            let when = j
                .scheduled_start
                .map(|t| t.format("%a %d %b %H:%M").to_string())
                .unwrap_or_else(|| "unscheduled".into());
            println!(
                "{}  {:<11} {:<6} {:<16} {}  [{} / {} checked, {} parts]{}",
                short(&j.id.to_string()),
                j.status.as_str(),
                j.priority.as_str(),
                when,
                j.title,
                j.checklist_done,
                j.checklist_total,
                j.parts_lines,
                if j.signed_off { "  signed" } else { "" }
            );
            if let Some(why) = &j.broken {
                println!("          BROKEN: {why}");
            }
        }
        Ok(())
    }

    /// A job that cannot be shown: which of its documents is broken, and why.
    pub fn broken(
        &self,
        job: &str,
        kind: schemas::DocKind,
        reasons: &[String],
    ) -> anyhow::Result<()> {
        if self.json {
            let v =
                serde_json::json!({"id": job, "broken": {"document": kind, "reasons": reasons}});
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        println!("{job}  BROKEN: its {kind} cannot be read");
        for r in reasons {
            println!("  {r}");
        }
        println!("The server repairs it when this device syncs.");
        Ok(())
    }

    pub fn job(&self, j: &JobView) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(j)?);
            return Ok(());
        }
        println!("{}  {}", j.id, j.title);
        println!(
            "status {}  priority {}",
            j.status.as_str(),
            j.priority.as_str()
        );
        if !j.customer.name.is_empty() || !j.site.name.is_empty() {
            println!("customer {}  site {}", j.customer.name, j.site.name);
        }
        if !j.notes.is_empty() {
            println!("notes: {}", j.notes);
        }
        let p = j.checklist.progress;
        println!(
            "checklist {} ({}/{} done, {}/{} required)",
            j.checklist.title, p.done, p.total, p.required_done, p.required_total
        );
        for item in &j.checklist.items {
            let value = match &item.value {
                Some(schemas::checklist::ItemValue::Number(n)) => {
                    format!("{n}{}", item.unit.as_deref().unwrap_or(""))
                }
                Some(schemas::checklist::ItemValue::Text(t)) => t.clone(),
                None => "-".into(),
            };
            println!(
                "  {} {:<24} {:<40} {}",
                if item.required { "*" } else { " " },
                item.id,
                item.label,
                value
            );
        }
        println!("parts");
        for line in &j.parts {
            println!(
                "  {}  {:<16} x{}  {}",
                short(&line.id),
                line.sku,
                line.qty,
                line.description
            );
        }
        for photo in &j.photos {
            println!(
                "photo {}  {}x{}  {}  {}",
                photo.id,
                photo.width,
                photo.height,
                photo.checklist_item.as_deref().unwrap_or(""),
                match photo.upload {
                    schemas::photo::UploadState::Pending => "not uploaded yet",
                    schemas::photo::UploadState::Uploaded => "uploaded",
                }
            );
            if let Some(r) = &photo.review {
                let state = match r.state {
                    schemas::photo::ReviewState::Approved => "approved",
                    schemas::photo::ReviewState::Rejected => "rejected",
                };
                let note = if r.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.note)
                };
                println!(
                    "  {state} by {} at {}{note}",
                    r.by,
                    r.at.format("%Y-%m-%d %H:%M")
                );
            }
        }
        if let Some(s) = &j.signoff {
            println!("signed off by {} at {}", s.signer_name, s.signed_at);
        }
        Ok(())
    }
}

/// The last 8 characters of an id: the random tail of a UUIDv7 (its head is a timestamp shared
/// by everything made in the same millisecond). Commands accept it in place of the full id.
fn short(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

/// What the server repaired, one line per repair (empty when there is none).
pub fn repairs(repairs: &[Repair]) -> String {
    if repairs.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "\nthe server repaired {} change(s) from this device:",
        repairs.len()
    );
    for r in repairs {
        text.push_str(&format!(
            "\n  {}  job {} document {}{}: {}",
            r.at.format("%Y-%m-%d %H:%M"),
            short(&r.job_id.to_string()),
            short(&r.doc_id.to_string()),
            if r.after_unassign {
                " (changed after the job was unassigned)"
            } else {
                ""
            },
            r.reasons.join("; ")
        ));
    }
    text
}
