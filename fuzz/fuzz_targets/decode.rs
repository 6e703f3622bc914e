//! `sensor::decode::decode` on arbitrary frames, over every link type it knows (and one it
//! does not). A decoded payload must lie inside the frame, and the fast path must give what
//! the reference (`etherparse`) decoder gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtls_sensor::decode::{decode, decode_reference, Skip};

fuzz_target!(|frame: &[u8]| {
    let range = frame.as_ptr_range();
    for link in mailtls_fuzz::LINK_TYPES.iter().copied().chain([9999]) {
        let d = decode(link, frame);
        assert_eq!(d, decode_reference(link, frame), "fast path differs (link {link})");
        match d.packet {
            Ok(p) => {
                let pr = p.payload.as_ptr_range();
                assert!(
                    p.payload.is_empty() || (pr.start >= range.start && pr.end <= range.end),
                    "payload outside the frame"
                );
            }
            Err(Skip::UnsupportedLink) => assert_eq!(link, 9999),
            Err(_) => {}
        }
    }
});
