//! The server session must answer any sequence of frames without panicking:
//! `cargo fuzz run session_frames`. The input is split into frames at 0xFF bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut session = sync_server::sync::session::Session::new(1 << 16, 1000);
    let now = std::time::Instant::now();
    let hello = schemas::wire::encode(&schemas::wire::ClientMsg::Hello { protocol: 1, client: String::new() });
    let _ = session.on_frame(now, &hello);
    session.welcome("fuzz", None, vec![], vec![]);
    for frame in data.split(|b| *b == 0xFF) {
        let _ = session.on_frame(now, frame);
    }
});
