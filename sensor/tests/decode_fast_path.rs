//! The decoder's fast path against the reference (`etherparse`) decoder on every frame of
//! real captures: ../shared/corpus (public captures and recorded mail peers) and the
//! bundled sample, each frame whole and cut at every length (snaplen-cut packets).

use mailtls_sensor::decode::{decode, decode_reference};
use std::path::{Path, PathBuf};

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            captures(&p, out);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "pcap" | "pcapng" | "cap"))
        {
            out.push(p);
        }
    }
}

#[test]
fn fast_path_equals_reference_on_real_frames() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("samples/mailpeers-sample.pcap")];
    captures(&root.join("../shared/corpus"), &mut files);
    let (mut frames, mut cuts) = (0u64, 0u64);
    for f in &files {
        let Ok(mut cap) = pcap::Capture::from_file(f) else {
            continue;
        };
        let link = cap.get_datalink().0;
        while let Ok(p) = cap.next_packet() {
            frames += 1;
            let data = p.data;
            assert_eq!(
                decode(link, data),
                decode_reference(link, data),
                "{}: frame {frames}",
                f.display()
            );
            // Cut copies: every length up to 80 bytes, then every 16th.
            for cut in (0..data.len()).filter(|c| *c < 80 || c % 16 == 0) {
                cuts += 1;
                assert_eq!(
                    decode(link, &data[..cut]),
                    decode_reference(link, &data[..cut]),
                    "{}: frame {frames} cut at {cut}",
                    f.display()
                );
            }
        }
    }
    eprintln!("{} files, {frames} frames, {cuts} cut frames", files.len());
    assert!(frames > 2000, "the sample alone has 2188 frames");
}
