//! The frame decoder must never panic, whatever the bytes: `cargo fuzz run decode_client_frame`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = schemas::wire::decode_client(data, 1 << 20);
    let _ = schemas::wire::decode_server(data, 1 << 20);
});
