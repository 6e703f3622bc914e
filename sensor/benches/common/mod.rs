//! Bench inputs read from real captures at start-up, and an allocation counter.

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// mimalloc, the allocator of the `mailtls` binary, counting calls while [`count_allocs`]
/// runs (a relaxed load otherwise, so timings are not disturbed).
pub struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to mimalloc unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` twice, the second time counting: returns the allocations (and reallocations) of
/// that second run and the bytes they asked for (so one-time initialisations are not
/// counted).
pub fn count_allocs<R>(mut f: impl FnMut() -> R) -> (R, u64, u64) {
    drop(f());
    ALLOCS.store(0, Ordering::Relaxed);
    ALLOC_BYTES.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let r = f();
    COUNTING.store(false, Ordering::SeqCst);
    (
        r,
        ALLOCS.load(Ordering::Relaxed),
        ALLOC_BYTES.load(Ordering::Relaxed),
    )
}

/// A path relative to the workspace root.
pub fn workspace_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The frames of a capture, back to back in one buffer as libpcap's read buffer holds them.
pub struct Frames {
    /// libpcap link type.
    pub link: i32,
    /// Every frame's captured bytes, concatenated.
    pub data: Vec<u8>,
    /// Per frame: capture time (µs), wire length, start and end in `data`.
    pub index: Vec<(i64, u32, usize, usize)>,
}

impl Frames {
    /// Reads a whole capture.
    // timeval's field types differ between platforms; `i64::from` is the portable spelling.
    #[allow(clippy::useless_conversion)]
    pub fn load(path: &Path) -> Result<Frames, String> {
        let mut cap =
            pcap::Capture::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let link = cap.get_datalink().0;
        let mut out = Frames {
            link,
            data: Vec::new(),
            index: Vec::new(),
        };
        while let Ok(p) = cap.next_packet() {
            let ts = i64::from(p.header.ts.tv_sec) * 1_000_000 + i64::from(p.header.ts.tv_usec);
            let start = out.data.len();
            out.data.extend_from_slice(p.data);
            out.index.push((ts, p.header.len, start, out.data.len()));
        }
        Ok(out)
    }

    /// Loads a capture, or says why not and returns `None` (for inputs outside the
    /// repository, which may be absent).
    pub fn load_optional(path: &Path) -> Option<Frames> {
        if !path.exists() {
            eprintln!("bench input skipped: {} not present", path.display());
            return None;
        }
        match Frames::load(path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("bench input skipped: {e}");
                None
            }
        }
    }

    /// The frames in capture order: (capture time µs, bytes).
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[u8])> + '_ {
        self.index
            .iter()
            .map(|&(ts, _, start, end)| (ts, &self.data[start..end]))
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.index.len()
    }
}
