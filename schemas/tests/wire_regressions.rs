//! The frame decoder on arbitrary input: never a panic, always a typed error or a message.
//! Inputs the fuzz targets (`fuzz/`) found interesting are kept here as regressions.

use proptest::prelude::*;
use schemas::wire::{self, ClientMsg, DecodeError};

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = wire::decode_client(&bytes, 256);
        let _ = wire::decode_server(&bytes, 256);
    }

    #[test]
    fn truncated_valid_frames_are_malformed_not_panics(cut in 0usize..40) {
        let frame = wire::encode(&ClientMsg::Sync { docs: vec![wire::DocMessage { doc: uuid::Uuid::nil(), data: vec![1, 2, 3, 4] }] });
        let cut = cut.min(frame.len().saturating_sub(1));
        prop_assert!(matches!(wire::decode_client(&frame[..cut], 1024), Err(DecodeError::Malformed(_))));
    }
}

#[test]
fn known_tricky_inputs() {
    // Deeply nested arrays, an indefinite-length map that never ends, a huge declared length.
    let cases: &[&[u8]] = &[
        &[0x81; 300],
        &[0xbf, 0x64, b't', b'y', b'p', b'e'],
        &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[],
    ];
    for c in cases {
        assert!(wire::decode_client(c, 1 << 20).is_err());
    }
}
