//! The `mobile-shell` binary end to end: the documented commands and their JSON.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn shell(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mobile-shell"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let out = shell(dir, &[args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = shell(dir, args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} should fail as bad input"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed to stdout on failure"
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_job_is_worked_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("device");
    let job = ok_json(
        dir,
        &[
            "job",
            "create",
            "--title",
            "Fix RTU",
            "--template",
            "hvac_maintenance",
        ],
    );
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["status"], "assigned");
    assert_eq!(job["checklist"]["items"][0]["id"], "power_isolated");
    for key in ["id", "label", "kind", "required", "value"] {
        assert!(
            job["checklist"]["items"][0].get(key).is_some(),
            "checklist item lacks {key}"
        );
    }

    let jobs = ok_json(dir, &["jobs"]);
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["id"], id.as_str());

    ok_json(dir, &["job", "status", &id, "en_route"]);
    ok_json(dir, &["job", "status", &id, "in_progress"]);
    ok_json(dir, &["check", &id, "filter_replaced", "pass"]);
    ok_json(dir, &["check", &id, "refrigerant_pressure", "121.5"]);
    let line = ok_json(dir, &["part", "add", &id, "FLT-16x25", "2"])["line"]
        .as_str()
        .unwrap()
        .to_string();
    let other = ok_json(dir, &["part", "add", &id, "BELT-A42", "1"])["line"]
        .as_str()
        .unwrap()
        .to_string();
    ok_json(dir, &["part", "remove", &id, &other]);
    let photo_file = tmp.path().join("plate.jpg");
    image::RgbImage::from_pixel(8, 6, image::Rgb([10, 200, 10]))
        .save(&photo_file)
        .unwrap();
    let photo = ok_json(
        dir,
        &[
            "photo",
            "add",
            &id,
            photo_file.to_str().unwrap(),
            "--item",
            "nameplate_photo",
        ],
    );
    assert_eq!(photo["mime"], "image/jpeg");

    let show = ok_json(dir, &["job", "show", &id]);
    assert_eq!(show["status"], "in_progress");
    assert_eq!(show["parts"].as_array().unwrap().len(), 1);
    assert_eq!(show["parts"][0]["id"], line.as_str());
    assert_eq!(show["parts"][0]["sku"], "FLT-16x25");
    assert_eq!(show["parts"][0]["qty"], 2.0);
    assert_eq!(show["photos"][0]["id"], photo["id"]);
    let pressure = show["checklist"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "refrigerant_pressure")
        .unwrap()
        .clone();
    assert_eq!(pressure["value"], 121.5);
    assert!(show["signoff"].is_null());

    // Short ids work the way the list shows them.
    let short = &id[id.len() - 8..];
    assert_eq!(ok_json(dir, &["job", "show", short])["id"], id.as_str());

    let sig = tmp.path().join("sig.png");
    image::RgbImage::from_pixel(8, 4, image::Rgb([0, 0, 0]))
        .save(&sig)
        .unwrap();
    let err = fails(
        dir,
        &[
            "sign",
            &id,
            "--name",
            "Dana",
            "--signature",
            sig.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("required checklist items are not done"),
        "{err}"
    );
    ok_json(dir, &["check", &id, "power_isolated", "pass"]);
    ok_json(dir, &["check", &id, "coil_condition", "clean"]);
    let signoff = ok_json(
        dir,
        &[
            "sign",
            &id,
            "--name",
            "Dana",
            "--signature",
            sig.to_str().unwrap(),
        ],
    );
    assert_eq!(signoff["signer_name"], "Dana");
    ok_json(dir, &["job", "status", &id, "completed"]);
    assert_eq!(
        ok_json(dir, &["job", "show", &id])["signoff"]["signer_name"],
        "Dana"
    );
    assert!(!ok_json(dir, &["pending"]).as_array().unwrap().is_empty());
}

#[test]
fn bad_input_exits_non_zero_with_a_message_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("device");
    let id = ok_json(dir, &["job", "create", "--title", "T"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fails(
            dir,
            &["job", "show", "00000000-0000-7000-8000-000000000000"]
        )
        .contains("no job")
    );
    assert!(fails(dir, &["job", "status", &id, "teleported"]).contains("unknown status"));
    assert!(
        fails(dir, &["job", "status", &id, "completed"])
            .contains("cannot go from assigned to completed")
    );
    assert!(fails(dir, &["part", "add", &id, "X", "-3"]).contains("must not be negative"));
    assert!(fails(dir, &["check", &id, "arrived_on_site", "maybe"]).contains("pass, fail or na"));
    let text = tmp.path().join("x.jpg");
    std::fs::write(&text, "hello").unwrap();
    assert!(
        fails(dir, &["photo", "add", &id, text.to_str().unwrap()]).contains("not a usable image")
    );
    assert!(
        fails(
            dir,
            &["job", "create", "--title", "T", "--template", "nope"]
        )
        .contains("unknown checklist template")
    );
    // JSON mode reports errors as JSON on stderr.
    let out = shell(dir, &["job", "status", &id, "teleported", "--json"]);
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(err["error"].as_str().unwrap().contains("unknown status"));
}

#[test]
fn two_streams_of_processes_adding_parts_at_once_keep_the_replica_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("device");
    let id = ok_json(&dir, &["job", "create", "--title", "Busy van"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let per_stream = 40;
    let streams: Vec<_> = (0..2)
        .map(|s| {
            let (dir, id) = (dir.clone(), id.clone());
            std::thread::spawn(move || {
                let mut ok = 0;
                for i in 0..per_stream {
                    let out = shell(&dir, &["part", "add", &id, &format!("S{s}-{i}"), "1"]);
                    if out.status.success() {
                        ok += 1;
                    } else {
                        // The only acceptable failure is waiting too long for the other writer.
                        let err = String::from_utf8_lossy(&out.stderr);
                        assert!(err.contains("another Fieldsync process is using"), "{err}");
                        assert_eq!(out.status.code(), Some(1));
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = streams.into_iter().map(|s| s.join().unwrap()).sum();
    let show = ok_json(&dir, &["job", "show", &id]);
    assert_eq!(show["parts"].as_array().unwrap().len(), ok);
    assert_eq!(ok_json(&dir, &["jobs"]).as_array().unwrap().len(), 1);
}

#[test]
fn a_data_dir_that_is_a_file_is_named_in_a_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "not a folder").unwrap();
    let err = fails(&file, &["jobs"]);
    assert!(
        err.contains("cannot use") && err.contains("notes.txt") && err.contains("is a file"),
        "{err}"
    );
}

/// A server on port 0 that answers every request with `status` (after reading it whole).
fn answering(status: &'static str) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let _ = reader.read_exact(&mut vec![0; length]);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    url
}

fn login(dir: &Path, server: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mobile-shell"))
        .arg("--data-dir")
        .arg(dir)
        .args([
            "login",
            "--server",
            server,
            "--user",
            "ana",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn network_and_server_failures_are_told_apart_and_are_not_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("device");

    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = login(&dir, &down);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "offline: cannot reach {down} (connection refused)"
        )),
        "{err}"
    );

    let out = login(&dir, &answering("503 Service Unavailable"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the server is unavailable (HTTP 503); try again later"),
        "{err}"
    );

    let out = login(&dir, &answering("401 Unauthorized"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("user name or password"));

    // A request the server refuses as it stands is the caller's to fix.
    let out = login(&dir, &answering("422 Unprocessable Entity"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 422"));
}

#[test]
fn status_lists_what_the_server_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("device");
    let (doc, job) = (schemas::new_id(), schemas::new_id());
    {
        // As the sync engine records a `repaired` message from the server.
        let mut r = client_core::Replica::open(&dir).unwrap();
        r.record_repair(
            doc,
            job,
            &["status: `teleported` is not a job status; kept `en_route`".into()],
            true,
        )
        .unwrap();
    }
    let status = ok_json(&dir, &["status"]);
    let repairs = status["repairs"].as_array().unwrap();
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0]["doc_id"], doc.to_string());
    assert_eq!(repairs[0]["job_id"], job.to_string());
    assert_eq!(repairs[0]["after_unassign"], true);
    assert!(
        repairs[0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("teleported")
    );

    let out = shell(&dir, &["status"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("the server repaired 1 change(s)"), "{text}");
    assert!(text.contains("kept `en_route`"), "{text}");
    assert!(text.contains("after the job was unassigned"), "{text}");
}

#[test]
fn a_huge_photo_file_is_refused_with_a_sentence_without_reading_it_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("device");
    let id = ok_json(dir, &["job", "create", "--title", "T"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Sparse 1 GiB files: nothing is written to disk, reading them whole would take a while.
    let gib = 1024 * 1024 * 1024;
    let text = tmp.path().join("huge.jpg");
    std::fs::File::create(&text).unwrap().set_len(gib).unwrap();
    let err = fails(dir, &["photo", "add", &id, text.to_str().unwrap()]);
    assert!(
        err.contains("not a usable image (unrecognised file format)"),
        "{err}"
    );

    let png = tmp.path().join("huge.png");
    let f = std::fs::File::create(&png).unwrap();
    std::io::Write::write_all(&mut &f, b"\x89PNG\r\n\x1a\n").unwrap();
    f.set_len(gib).unwrap();
    let err = fails(dir, &["photo", "add", &id, png.to_str().unwrap()]);
    assert!(
        err.contains("1024 MiB, more than the 64 MiB limit"),
        "{err}"
    );
    assert!(
        ok_json(dir, &["job", "show", &id])["photos"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
